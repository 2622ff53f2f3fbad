-- | Linked with libelstream.so instead of the static library: the shim must
-- say what it cannot do (hidden RTS switches, stop-the-world) and keep going.
-- Prints "start ok" or "start error: ...", then the status or the flush error.
--
-- > SharedLink SOCKET
module Main (main) where

import Control.Exception (try)
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [sock] <- getArgs
  hSetBuffering stdout LineBuffering
  r <- try (startWith ("unix:" ++ sock))
  case r of
    Left e -> putStrLn ("start error: " ++ errorMessage e)
    Right () -> do
      putStrLn "start ok"
      control "status" >>= putStr
      f <- try flush
      putStrLn (either (\e -> "flush error: " ++ errorMessage e) (const "flush ok") f)
      traceEventIO "shared hello"
      stop
  putStrLn ("alive " ++ show (sum [1 .. 1000 :: Int]))
