-- | Misuse of the shim's API: every call must fail with a clear error and the
-- program must keep running. Prints one "error <call>: <text>" line per
-- refused call, then "alive" and "done".
--
-- > ApiErrors DIR     (DIR: a writable directory for the one good socket)
module Main (main) where

import Control.Exception (try)
import Control.Monad (forM_)
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

attempt :: String -> IO () -> IO ()
attempt what act = do
  r <- try act
  case r of
    Left e -> putStrLn ("error " ++ what ++ ": " ++ errorMessage e)
    Right () -> putStrLn ("ok " ++ what)

main :: IO ()
main = do
  [dir] <- getArgs
  hSetBuffering stdout LineBuffering
  attempt "stop-before-start" stop
  forM_
    [ ("malformed", "bogus:endpoint")
    , ("unknown-option", "unix:" ++ dir ++ "/a.sock,colour=red")
    , ("bad-size", "unix:" ++ dir ++ "/a.sock,ring=lots")
    , ("unwritable", "unix:/proc/elstream-cannot-be-here.sock")
    , ("too-long", "unix:" ++ dir ++ "/" ++ replicate 200 'x' ++ ".sock")
    ]
    $ \(what, cfg) -> attempt what (startWith cfg)
  attempt "good" (startWith ("unix:" ++ dir ++ "/good.sock"))
  attempt "second-start" (startWith ("unix:" ++ dir ++ "/other.sock"))
  traceEventIO "still streaming"
  putStrLn ("alive " ++ show (sum [1 .. 100000 :: Int]))
  attempt "stop" stop
  attempt "second-stop" stop
  putStrLn "done"
