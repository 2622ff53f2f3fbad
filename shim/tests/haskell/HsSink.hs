-- | A sink written in Haskell (GHC.Eventlog.Stream.addSink): counts blocks
-- and bytes; prints them with the shim's counters after stopping.
--
-- > HsSink CONFIG EVENTS
module Main (main) where

import Control.Concurrent.MVar
import Control.Monad
import Debug.Trace (traceEventIO)
import Data.IORef
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg, n] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  counts <- newIORef (0 :: Int, 0 :: Int, 0 :: Int)
  stopped <- newEmptyMVar
  addSink Sink
    { sinkHeader = \_ len -> modifyIORef' counts (\(h, b, y) -> (h + len, b, y))
    , sinkBlock = \_ len -> modifyIORef' counts (\(h, b, y) -> (h, b + 1, y + len))
    , sinkDrop = \_ _ -> pure ()
    , sinkStop = putMVar stopped ()
    }
  forM_ [1 .. read n :: Int] $ \i -> traceEventIO ("hs sink " ++ show i)
  stop
  takeMVar stopped
  (h, b, y) <- readIORef counts
  s <- stats
  putStrLn ("sink-header " ++ show h)
  putStrLn ("sink-blocks " ++ show b)
  putStrLn ("sink-bytes " ++ show y)
  putStrLn ("blocks-written " ++ show (blocksWritten s))
  putStrLn ("bytes-written " ++ show (bytesWritten s))
