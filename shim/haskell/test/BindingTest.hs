-- | Exercises GHC.Eventlog.Stream against the real shim; testkit's
-- tests/binding.rs runs it and checks every line.
--
-- > BindingTest SOCKET_PATH
--
-- Prints one "<label> <result>" line per step.
module Main (main) where

import Control.Exception (try)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

report :: Show a => String -> IO a -> IO ()
report label act = do
  r <- try act
  putStrLn . (label ++) . (' ' :) $ case r of
    Left e -> "error " ++ show (errorCode e) ++ " " ++ errorCall e ++ ": " ++ errorMessage e
    Right v -> "ok " ++ show v

main :: IO ()
main = do
  [sock] <- getArgs
  hSetBuffering stdout LineBuffering
  report "bad-config" (startWith "bogus:nowhere")
  report "stop-unstarted" stop
  report "stats-unstarted" (ringCapacity <$> stats)
  report "with" $ withEventlogStream ("unix:" ++ sock ++ ",ring=8M") $ do
    report "stats" (ringCapacity <$> stats)
    report "double-start" (startWith ("unix:" ++ sock ++ "-other"))
    pure ()
  report "stop-after-with" stop
