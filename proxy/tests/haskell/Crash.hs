-- | A program that ends badly, for `elstream run` tests.
--
-- > Crash exit N     posts events, then exits with status N
-- > Crash kill       posts events, then kills itself with SIGKILL
-- > Crash sleep      posts events, then sleeps (until a signal ends it)
--
-- Posts "CRASH begin" and 100 "CRASH event <i>" user messages first.
module Main (main) where

import Control.Concurrent (threadDelay)
import Control.Monad (forM_, forever)
import Debug.Trace (traceEventIO)
import System.Environment (getArgs)
import System.Exit
import System.IO
import System.Posix.Signals (raiseSignal, sigKILL)

main :: IO ()
main = do
  args <- getArgs
  hSetBuffering stdout LineBuffering
  traceEventIO "CRASH begin"
  forM_ [1 .. 100 :: Int] $ \i -> traceEventIO ("CRASH event " ++ show i)
  putStrLn "crash ready"
  case args of
    ["exit", n] -> exitWith (ExitFailure (read n))
    ["kill"] -> raiseSignal sigKILL
    ["sleep"] -> forever (threadDelay 1000000)
    _ -> hPutStrLn stderr "usage: Crash exit N | kill | sleep" >> exitWith (ExitFailure 64)
