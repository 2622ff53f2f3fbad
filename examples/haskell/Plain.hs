-- | A program that does not link the shim, for `elstream run` (eventlog
-- through a FIFO with +RTS -l -ol<fifo>): worker threads, allocation and GCs,
-- and user events in exactly known numbers.
--
-- > Plain [ROUNDS [DELAY_MS]]          (defaults 20 and 50)
--
-- Each round forks 2 workers; worker i posts "START work <i>", allocates,
-- posts "STOP work <i>"; then the marker "round <r>" and a DELAY_MS sleep.
-- "PLAIN begin" and "PLAIN end" frame the run. Stdout is "key value" lines:
-- pid and rounds at start, user-events and markers at the end.
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.List (foldl')
import qualified Data.Map.Strict as M
import Debug.Trace (traceEventIO, traceMarkerIO)
import System.Environment (getArgs)
import System.IO
import System.Posix.Process (getProcessID)

workers :: Int
workers = 2

main :: IO ()
main = do
  pos <- getArgs
  let num k d = if length pos > k then read (pos !! k) else d :: Int
      rounds = num 0 20
      delayMs = num 1 50
  hSetBuffering stdout LineBuffering
  pid <- getProcessID
  putStrLn ("pid " ++ show pid)
  putStrLn ("rounds " ++ show rounds)
  traceEventIO "PLAIN begin"
  forM_ [0 .. rounds - 1] $ \r -> do
    dones <- forM [0 .. workers - 1] $ \w -> do
      done <- newEmptyMVar
      let i = r * workers + w
      _ <- forkIO $ do
        traceEventIO ("START work " ++ show i)
        let m = foldl' (\acc k -> M.insert ((k * 7919 + i) `mod` 10000) k acc)
                       M.empty [1 .. 5000 :: Int]
            s = M.foldl' (+) 0 m
        s `seq` traceEventIO ("STOP work " ++ show i)
        putMVar done s
      pure done
    mapM_ takeMVar dones
    traceMarkerIO ("round " ++ show r)
    when (delayMs > 0) $ threadDelay (delayMs * 1000)
  traceEventIO "PLAIN end"
  putStrLn ("user-events " ++ show (2 + 2 * workers * rounds))
  putStrLn ("markers " ++ show rounds)
