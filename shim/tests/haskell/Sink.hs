{-# LANGUAGE ForeignFunctionInterface #-}
-- | Streams to an in-process C sink (examples/c-sink/count_sink.c) only.
-- Prints the shim's counters after stopping; the sink prints its own.
--
-- > Sink CONFIG EVENTS
module Main (main) where

import Control.Monad
import Debug.Trace (traceEventIO)
import Foreign.C.Types (CInt (..))
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

foreign import ccall safe "count_sink_install_stdout" c_install :: IO CInt

main :: IO ()
main = do
  [cfg, n] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  rc <- c_install
  putStrLn ("install " ++ show rc)
  forM_ [1 .. read n :: Int] $ \i -> traceEventIO ("sink event " ++ show i)
  hFlush stdout
  stop
  s <- stats
  putStrLn ("blocks-written " ++ show (blocksWritten s))
  putStrLn ("bytes-written " ++ show (bytesWritten s))
