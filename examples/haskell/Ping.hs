-- | Latency probe: posts "ping <monotonic ns>" user events at a fixed pace,
-- optionally with threads that only 'yield' to load the scheduler, so a
-- consumer can measure event-to-arrival latency (same CLOCK_MONOTONIC).
--
-- > Ping CONFIG PINGS INTERVAL_MS BUSY_THREADS
--
-- Waits for one consumer before the first ping. Run with +RTS -N2.
module Main (main) where

import Control.Concurrent
import Control.Monad
import Debug.Trace (traceEventIO)
import GHC.Clock (getMonotonicTimeNSec)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg, n, ms, busy] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  _ <- waitForConsumers 1 0
  replicateM_ (read busy) (forkIO (forever yield))
  forM_ [1 .. read n :: Int] $ \_ -> do
    t <- getMonotonicTimeNSec
    traceEventIO ("ping " ++ show t)
    threadDelay (read ms * 1000)
  out <- control "status"
  putStr (unlines [l | l <- lines out, take 6 l == "flush-" || take 7 l == "flushes"])
  stop
