-- | Exercises runtime control from inside the program while worker threads
-- keep the scheduler, the GC and the user class busy. Prints progress lines
-- the test waits for, and reads "go" / "quit" lines from stdin.
--
-- > Control CONFIG
module Main (main) where

import Control.Concurrent
import Control.Exception (evaluate)
import Control.Monad
import Debug.Trace (traceEventIO, traceMarkerIO)
import GHC.Conc (labelThread)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO
import System.Mem (performGC)

worker :: Int -> IO ()
worker n = forever $ do
  _ <- evaluate (sum [1 .. 2000 + n :: Int])
  threadDelay 500

phase :: Int -> IO ()
phase ms = do
  replicateM_ (ms `div` 50) (performGC >> threadDelay 50000)

main :: IO ()
main = do
  [cfg] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  workers <- forM [1 .. 3 :: Int] $ \i -> do
    t <- forkIO (worker i)
    labelThread t ("worker-" ++ show i)
    pure t
  traceMarkerIO "all-on"
  phase 300
  setClasses "-s"
  traceMarkerIO "sched-off"
  phase 300
  traceMarkerIO "sched-on"
  setClasses "+s"
  phase 300
  setClasses "-g"
  traceMarkerIO "gc-off"
  phase 300
  traceMarkerIO "gc-on"
  setClasses "+g"
  phase 300
  traceMarkerIO "user-off"
  setClasses "-u"
  replicateM_ 100 (traceEventIO "hidden")
  setClasses "+u"
  traceMarkerIO "user-on"
  replicateM_ 50 $ do
    setEnabled False
    threadDelay 2000
    setEnabled True
    threadDelay 2000
  traceMarkerIO "onoff-done"
  stickyMessage "sticky hello"
  sync
  putStrLn "ready"
  "go" <- getLine
  snapshot "mid"
  putStrLn "snapshot-done"
  -- A quiet second, then one event: only the periodic flush brings it out.
  mapM_ killThread workers
  threadDelay 1000000
  traceEventIO "LATE ping"
  putStrLn "pinged"
  "quit" <- getLine
  stop
  putStrLn "done"
