{-# LANGUAGE MagicHash, UnboxedTuples #-}
-- | Writes the eventlogs the format and stream tests read when the external
-- corpus is absent (testkit/src/logs.rs runs it with `+RTS -l -ol<file>`).
-- Base only; builds on GHC 9.0.2, 9.6 and 9.10.
--
-- > OwnLog user    user messages and markers (ASCII, non-ASCII, escapes),
-- >                binary messages (every byte value, invalid UTF-8), thread
-- >                labels, forkIO threads and sparks (run it with -N2 -lf)
-- > OwnLog heap    retained data that grows and shrinks across major GCs:
-- >                heap censuses under -hT / -hi, nonmoving marks under -xn
-- > OwnLog yield   two threads that yield 80000 times each: a few MB of
-- >                scheduler events, so several full 2 MiB blocks per cap
--
-- Stdout: what was posted, one item a line, as hex of the posted bytes, so a
-- test compares the log against the program's own account, not a constant:
--   msg HEX | marker HEX | binary HEX | label HEX | done
module Main (main) where

import Control.Concurrent
import Control.Exception (evaluate)
import Control.Monad
import Data.Bits (shiftR, (.&.))
import Data.Char (ord)
import Data.List (foldl')
import Data.Word (Word8)
import Debug.Trace (traceEventIO, traceMarkerIO)
import Foreign.Marshal.Array (withArrayLen)
import GHC.Clock (getMonotonicTime)
import GHC.Conc (labelThread, numCapabilities, par, pseq)
import GHC.Exts (Int (..), Ptr (..), traceBinaryEvent#)
import GHC.IO (IO (..))
import System.Environment (getArgs)
import System.IO (BufferMode (..), hPutStrLn, hSetBuffering, stderr, stdout)
import System.Mem (performMajorGC)

main :: IO ()
main = do
  hSetBuffering stdout LineBuffering
  args <- getArgs
  case args of
    ["user"] -> user
    ["heap"] -> heap
    ["yield"] -> yields
    _ -> hPutStrLn stderr "usage: OwnLog user|heap|yield" >> error "bad arguments"
  putStrLn "done"

-- | Text as the RTS posts it (traceEventIO and labels encode UTF-8).
utf8 :: String -> [Word8]
utf8 = concatMap (enc . ord)
  where
    enc c
      | c < 0x80 = [fromIntegral c]
      | c < 0x800 = [0xc0 + hi 6, cont 0]
      | c < 0x10000 = [0xe0 + hi 12, cont 6, cont 0]
      | otherwise = [0xf0 + hi 18, cont 12, cont 6, cont 0]
      where
        hi n = fromIntegral (c `shiftR` n)
        cont n = fromIntegral (0x80 + ((c `shiftR` n) .&. 0x3f))

hex :: [Word8] -> String
hex = concatMap (\b -> [digit (b `shiftR` 4), digit (b .&. 15)])
  where
    digit d = "0123456789abcdef" !! fromIntegral d

report :: String -> [Word8] -> IO ()
report kind bytes = putStrLn (kind ++ " " ++ hex bytes)

traceBinary :: [Word8] -> IO ()
traceBinary bytes = withArrayLen bytes $ \n (Ptr a) -> case n of
  I# n# -> IO (\s -> (# traceBinaryEvent# a n# s, () #))

messages :: [String]
messages =
  [ "OWN begin"
  , "h\233llo w\246rld \10003 \12371\12435\12395\12385\12399"
  , "emoji \128512 and \8364 and \1488\1489"
  , "back\\slash\nnew line\r\ttab"
  , replicate 3000 'x' ++ "\955"
  , ""
  ]

markers :: [String]
markers = ["marker \10003 caf\233", "\22810\35328\35486 mark"]

binaries :: [[Word8]]
binaries =
  [ [0 .. 255]
  , [0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80] -- not UTF-8
  , utf8 "binary \10003"
  , replicate 1000 0xaa
  ]

labels :: [String]
labels = ["worker-ascii", "w\246rker \10003", "\25968\25454 thread"]

user :: IO ()
user = do
  forM_ messages $ \m -> traceEventIO m >> report "msg" (utf8 m)
  forM_ markers $ \m -> traceMarkerIO m >> report "marker" (utf8 m)
  forM_ binaries $ \b -> traceBinary b >> report "binary" b
  dones <- forM labels $ \l -> do
    done <- newEmptyMVar
    t <- forkIO $ do
      traceEventIO ("OWN thread " ++ l)
      _ <- evaluate (foldl' (+) 0 [1 .. 20000 :: Int])
      yield
      putMVar done ()
    labelThread t l
    report "label" (utf8 l)
    report "msg" (utf8 ("OWN thread " ++ l))
    pure done
  mapM_ takeMVar dones
  -- Sparks: a parallel sum (spark events need -lf; -N2 lets them be stolen).
  total <- evaluate (pfib 22)
  let end = "OWN end " ++ show total ++ " caps " ++ show numCapabilities
  traceEventIO end
  report "msg" (utf8 end)

pfib :: Int -> Int
pfib n
  | n < 12 = fib n
  | otherwise = a `par` (b `pseq` (a + b + 1))
  where
    a = pfib (n - 1)
    b = pfib (n - 2)
    fib m = if m < 2 then 1 else fib (m - 1) + fib (m - 2)

-- | Live data that grows for ten rounds and then shrinks; each round stays
-- busy for 25 ms (the RTS's ticker, which times -i censuses, stops while the
-- program sleeps) and ends with a major GC: -hT/-hi take a census at the
-- major GCs after each interval, -xn marks concurrently.
heap :: IO ()
heap = do
  let rounds = 14 :: Int
  ref <- newMVar []
  forM_ [1 .. rounds] $ \r -> do
    kept <- takeMVar ref
    let keep = if r <= 10 then r else rounds - r
    new <- evaluate (forceList [fromIntegral (i * r) :: Integer | i <- [1 .. 6000 :: Int]])
    let kept' = take keep (new : kept)
    mapM_ (evaluate . forceList) kept'
    putMVar ref kept'
    t0 <- getMonotonicTime
    busy t0 r
    traceEventIO ("OWN round " ++ show r)
    report "msg" (utf8 ("OWN round " ++ show r))
    performMajorGC
  final <- takeMVar ref
  _ <- evaluate (sum (map length final))
  pure ()
  where
    busy t0 r = do
      _ <- evaluate (foldl' (+) 0 [1 .. 20000 + r])
      t <- getMonotonicTime
      when (t - t0 < 0.025) (busy t0 (r + 1))

yields :: IO ()
yields = do
  traceEventIO "OWN yield begin"
  report "msg" (utf8 "OWN yield begin")
  dones <- forM [1 .. 2 :: Int] $ \_ -> do
    done <- newEmptyMVar
    _ <- forkIO (replicateM_ 80000 yield >> putMVar done ())
    pure done
  mapM_ takeMVar dones
  traceEventIO "OWN yield end"
  report "msg" (utf8 "OWN yield end")

forceList :: [Integer] -> [Integer]
forceList xs = foldl' (flip seq) () xs `seq` xs
