-- | For testkit's own tests (tests/ghc.rs): prints what the test checks of
-- how it was started (pid, working directory, an environment variable), then
-- waits for SIGTERM, says so and exits with code 3.
module Main (main) where

import Control.Concurrent
import Debug.Trace (traceEventIO)
import System.Directory (getCurrentDirectory)
import System.Environment (lookupEnv)
import System.Exit
import System.IO
import System.Posix.Process (getProcessID)
import System.Posix.Signals

main :: IO ()
main = do
  hSetBuffering stdout LineBuffering
  done <- newEmptyMVar
  _ <- installHandler sigTERM (Catch (putMVar done ())) Nothing
  pid <- getProcessID
  cwd <- getCurrentDirectory
  env <- lookupEnv "TESTKIT_ENV"
  putStrLn ("pid " ++ show pid)
  putStrLn ("cwd " ++ cwd)
  putStrLn ("env " ++ maybe "-" id env)
  traceEventIO "signals ready"
  putStrLn "ready"
  takeMVar done
  traceEventIO "signals TERM"
  putStrLn "got TERM"
  exitWith (ExitFailure 3)
