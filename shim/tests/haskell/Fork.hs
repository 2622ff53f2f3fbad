-- | forkProcess while streaming: the child posts events and exits; the
-- parent keeps streaming. Prints "child-exit <status>" and "done". Waits for
-- one consumer first: a consumer still in the listener's backlog when the
-- program ends is reset by the kernel.
--
-- > Fork CONFIG
module Main (main) where

import Control.Concurrent (threadDelay)
import Control.Monad
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO
import System.Posix.Process (forkProcess, getProcessStatus)

main :: IO ()
main = do
  [cfg] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  _ <- waitForConsumers 1 0
  traceEventIO "parent before"
  pid <- forkProcess $ do
    replicateM_ 100 (traceEventIO "child event")
  st <- getProcessStatus True False pid
  putStrLn ("child-exit " ++ show st)
  replicateM_ 100 (traceEventIO "parent after")
  stop
  putStrLn "done"
