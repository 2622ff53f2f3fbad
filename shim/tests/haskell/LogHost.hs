-- | A host that chooses where the shim's messages go: with "capture" it
-- installs a C log callback (tests/c/log_capture.c) before starting; then it
-- streams until a "quit" line on stdin.
--
-- > LogHost CONFIG capture|stderr
module Main (main) where

import Foreign.C.Types (CInt (..))
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

foreign import ccall "capture_logs" captureLogs :: IO CInt

main :: IO ()
main = do
  [cfg, mode] <- getArgs
  hSetBuffering stdout LineBuffering
  rc <- if mode == "capture" then captureLogs else pure 0
  putStrLn ("capture " ++ show rc)
  startWith cfg
  putStrLn "started"
  _ <- getLine
  stop
  putStrLn "stopped"
