-- | After 'stop' the program runs on with busy threads: the RTS must not be
-- left posting events that no writer takes (GHC 9.0.2 then prints
-- "printAndClearEventLog: could not flush event log" for every full buffer).
--
-- > StopBusy CONFIG
module Main (main) where

import Control.Concurrent
import Control.Monad
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  _ <- waitForConsumers 1 0
  replicateM_ 2 (forkIO (forever yield))
  forM_ [1 .. 20 :: Int] $ \i -> traceEventIO ("before " ++ show i) >> threadDelay 5000
  stop
  -- Long enough for the yielders to fill every capability buffer many times.
  threadDelay 500000
  putStrLn "ran-on-after-stop"
