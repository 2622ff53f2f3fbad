-- | A consumer that does not read while the program writes far more than the
-- ring holds. Waits for one consumer, floods the eventlog with yields, stops
-- the stream and prints the shim's counters and its own peak RSS, as
-- "key value" lines.
--
-- > Overflow CONFIG YIELDS
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.List (isPrefixOf)
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg, n] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  putStrLn "started"
  _ <- waitForConsumers 1 0
  putStrLn "connected"
  traceEventIO "OVERFLOW begin"
  dones <- forM [1 .. 4 :: Int] $ \_ -> do
    done <- newEmptyMVar
    _ <- forkIO (replicateM_ (read n) yield >> putMVar done ())
    pure done
  mapM_ takeMVar dones
  traceEventIO "OVERFLOW end"
  putStrLn "stopping"
  stop
  s <- stats
  forM_
    [ ("blocks-written", blocksWritten s), ("bytes-written", bytesWritten s)
    , ("blocks-evicted", blocksEvicted s), ("bytes-evicted", bytesEvicted s)
    , ("bytes-delivered", bytesDelivered s)
    , ("consumer-blocks-dropped", consumerBlocksDropped s)
    , ("consumer-bytes-dropped", consumerBytesDropped s)
    , ("bytes-replayed", bytesReplayed s)
    , ("ring-capacity", ringCapacity s) ]
    $ \(k, v) -> putStrLn (k ++ " " ++ show v)
  status <- lines <$> readFile "/proc/self/status"
  forM_ [l | l <- status, "VmHWM:" `isPrefixOf` l] $ \l ->
    putStrLn ("vm-hwm-kb " ++ words l !! 1)
