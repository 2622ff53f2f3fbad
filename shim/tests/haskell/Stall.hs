-- | A steady stream for SECONDS: two threads yield (scheduler events, about
-- 10 MB/s of eventlog) and post a "tick" user event every 100 yields. Prints
-- "user-events N" (ticks + the final "STALL end") at the end.
--
-- > Stall CONFIG SECONDS
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.IORef
import Debug.Trace (traceEventIO)
import GHC.Clock (getMonotonicTime)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg, secs] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  t0 <- getMonotonicTime
  ticks <- newIORef (0 :: Int)
  dones <- forM [1 .. 2 :: Int] $ \_ -> do
    done <- newEmptyMVar
    let loop = do
          replicateM_ 100 yield
          traceEventIO "tick"
          threadDelay 1000
          atomicModifyIORef' ticks (\n -> (n + 1, ()))
          t <- getMonotonicTime
          if t - t0 < read secs then loop else putMVar done ()
    _ <- forkIO loop
    pure done
  mapM_ takeMVar dones
  traceEventIO "STALL end"
  n <- readIORef ticks
  stop
  putStrLn ("user-events " ++ show (n + 1))
