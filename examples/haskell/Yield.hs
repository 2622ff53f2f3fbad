-- | The stress load: threads that do nothing but 'yield', which makes the
-- scheduler write run/stop events as fast as it can (about 120 MB/s of
-- eventlog on the reference box with the defaults).
--
-- > Yield [THREADS [YIELDS]] [--stream[=CONFIG]] [--wait-consumers=N]
--
-- Defaults: 4 threads, 2000000 yields each. --wait-consumers=N holds the load
-- back until N consumers are connected to the stream (at most 60 s).
--
-- Run with +RTS -N2. Posts the user messages "YIELD begin" and "YIELD end"
-- around the load. Stdout is "key value" lines: pid, threads, yields, and at
-- the end user-events (always 2).
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.List (isPrefixOf, partition)
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream (startWith, stop, waitForConsumers)
import System.Environment (getArgs)
import System.IO
import System.Posix.Process (getProcessID)

main :: IO ()
main = do
  (flags, pos) <- partition ("--" `isPrefixOf`) <$> getArgs
  let stream = [drop 8 f | f <- flags, "--stream" `isPrefixOf` f]
      num k d = if length pos > k then read (pos !! k) else d :: Int
      threads = num 0 4
      yields = num 1 2000000
  hSetBuffering stdout LineBuffering
  pid <- getProcessID
  putStrLn ("pid " ++ show pid)
  putStrLn ("threads " ++ show threads)
  putStrLn ("yields " ++ show yields)
  case stream of
    [] -> pure ()
    (cfg : _) -> startWith (drop 1 cfg)
  forM_ [read (drop 17 f) | f <- flags, "--wait-consumers=" `isPrefixOf` f] $ \n ->
    void (waitForConsumers n 60000)
  traceEventIO "YIELD begin"
  dones <- forM [1 .. threads] $ \_ -> do
    done <- newEmptyMVar
    _ <- forkIO (replicateM_ yields yield >> putMVar done ())
    pure done
  mapM_ takeMVar dones
  traceEventIO "YIELD end"
  unless (null stream) stop
  putStrLn "user-events 2"
