-- | The demo program: worker threads on several capabilities, real
-- allocation (so GCs happen), user events as START/STOP spans and markers,
-- in exactly known numbers.
--
-- > Demo [ROUNDS [DELAY_MS [WORK]]] [--stream[=CONFIG]] [--wait-consumers=N]
--
-- Each round forks 'workers' threads, each labelled "worker <i>"
-- (GHC.Conc.labelThread: a ThreadLabel event; the main thread is "demo main");
-- worker i posts "START work <i>", builds
-- and sums a Data.Map of WORK entries, posts "STOP work <i>". Each round
-- ends with the marker "round <r>", then sleeps DELAY_MS. The program begins
-- with "DEMO begin" and ends with "DEMO end".
--
-- With --stream it streams its eventlog through the shim (CONFIG as for
-- GHC.Eventlog.Stream.startWith; without one, $ELSTREAM or the default);
-- without, it runs the same load, e.g. for a @+RTS -l@ file to compare.
-- --wait-consumers=N holds the load back until N consumers are connected (at
-- most 60 s), so a test sees the whole run without racing the program.
-- Run with +RTS -N2.
--
-- Stdout is "key value" lines: pid, workers, rounds at start; at the end
-- user-events and markers, the numbers of user messages and markers posted.
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.List (foldl', isPrefixOf)
import qualified Data.Map.Strict as M
import Debug.Trace (traceEventIO, traceMarkerIO)
import GHC.Conc (labelThread)
import GHC.Eventlog.Stream (startWith, stop, waitForConsumers)
import System.Environment (getArgs)
import System.IO
import System.Posix.Process (getProcessID)

workers :: Int
workers = 4

main :: IO ()
main = do
  argv <- getArgs
  let (flags, pos) = span' argv
      stream = [drop 8 f | f <- flags, "--stream" `isPrefixOf` f]
      num k d = if length pos > k then read (pos !! k) else d :: Int
      rounds = num 0 20
      delayMs = num 1 50
      work = num 2 5000
  hSetBuffering stdout LineBuffering
  pid <- getProcessID
  putStrLn ("pid " ++ show pid)
  putStrLn ("workers " ++ show workers)
  putStrLn ("rounds " ++ show rounds)
  case stream of
    [] -> pure ()
    (cfg : _) -> startWith (drop 1 cfg) -- "=CONFIG" or ""
  forM_ [read (drop 17 f) | f <- flags, "--wait-consumers=" `isPrefixOf` f] $ \n ->
    void (waitForConsumers n 60000)
  myThreadId >>= \t -> labelThread t "demo main"
  traceEventIO "DEMO begin"
  forM_ [0 .. rounds - 1] $ \r -> do
    dones <- forM [0 .. workers - 1] $ \w -> do
      done <- newEmptyMVar
      let i = r * workers + w
      _ <- forkIO $ do
        myThreadId >>= \t -> labelThread t ("worker " ++ show i)
        traceEventIO ("START work " ++ show i)
        let m = foldl' (\acc k -> M.insert ((k * 7919 + i) `mod` (2 * work)) k acc)
                       M.empty [1 .. work]
            s = M.foldl' (+) 0 m
        s `seq` traceEventIO ("STOP work " ++ show i)
        putMVar done s
      pure done
    mapM_ takeMVar dones
    traceMarkerIO ("round " ++ show r)
    when (delayMs > 0) $ threadDelay (delayMs * 1000)
  traceEventIO "DEMO end"
  unless (null stream) stop
  putStrLn ("user-events " ++ show (2 + 2 * workers * rounds))
  putStrLn ("markers " ++ show rounds)
  where
    span' as = ([a | a <- as, "--" `isPrefixOf` a], [a | a <- as, not ("--" `isPrefixOf` a)])
