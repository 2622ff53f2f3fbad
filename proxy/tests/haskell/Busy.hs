-- | A shim-linked program that keeps the scheduler, the GC and the user class
-- busy until told to stop, so a test decides how long it streams.
--
-- > Busy CONFIG CONSUMERS DELAY_MS
--
-- Starts streaming with CONFIG, waits (at most 120 s) until CONSUMERS
-- consumers are connected, prints "ready", posts "BUSY begin", then runs
-- rounds: two worker threads each post "work <i>" after some allocation, a
-- "round <r>" marker, DELAY_MS of sleep. A "stop" line on stdin ends it after
-- the current round: "BUSY end", the shim stops, and it prints "rounds N" and
-- "user-events M" (every user message it posted).
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.IORef
import Data.List (foldl')
import qualified Data.Map.Strict as M
import Debug.Trace (traceEventIO, traceMarkerIO)
import GHC.Eventlog.Stream (startWith, stop, waitForConsumers)
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg, wantS, delayS] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  _ <- waitForConsumers (read wantS) 120000
  stopFlag <- newIORef False
  _ <- forkIO $ do
    let loop = do
          l <- getLine
          if l == "stop" then writeIORef stopFlag True else loop
    loop
  putStrLn "ready"
  traceEventIO "BUSY begin"
  let go :: Int -> IO Int
      go r = do
        dones <- forM [0, 1 :: Int] $ \w -> do
          done <- newEmptyMVar
          _ <- forkIO $ do
            let m = foldl' (\acc k -> M.insert (k * 31 + w) k acc) M.empty [1 .. 2000 :: Int]
            M.size m `seq` traceEventIO ("work " ++ show (2 * r + w))
            putMVar done ()
          pure done
        mapM_ takeMVar dones
        traceMarkerIO ("round " ++ show r)
        threadDelay (read delayS * 1000)
        s <- readIORef stopFlag
        if s then pure (r + 1) else go (r + 1)
  rounds <- go 0
  traceEventIO "BUSY end"
  stop
  putStrLn ("rounds " ++ show rounds)
  putStrLn ("user-events " ++ show (2 + 2 * rounds))
