-- | A deterministic load for the "complete stream" tests: labelled worker
-- threads that allocate (so GCs happen), START/STOP spans, markers, MVar
-- blocking, sparks and yields, in exactly known numbers.
--
-- > Load ROUNDS [--stream[=CONFIG]] [--wait-consumers=N] [--yield=N]
--
-- With --stream it becomes the RTS's writer through the shim (and never calls
-- stop: the stream ends at program exit, as a -l file does); without, it runs
-- the same load for a @+RTS -l@ file to compare with. --wait-consumers=N holds
-- the load back until N consumers are connected. --yield=N makes each worker
-- yield N times (a scheduler-heavy load).
--
-- Stdout: "key value" lines; at the end user-events, markers, spans.
module Main (main) where

import Control.Concurrent
import Control.Exception (evaluate)
import Control.Monad
import Data.List (foldl', isPrefixOf)
import qualified Data.Map.Strict as M
import Debug.Trace (traceEventIO, traceMarkerIO)
import GHC.Conc (labelThread, par, pseq)
import GHC.Eventlog.Stream (startWith, waitForConsumers)
import System.Environment (getArgs)
import System.IO

workers :: Int
workers = 4

main :: IO ()
main = do
  argv <- getArgs
  let flags = [a | a <- argv, "--" `isPrefixOf` a]
      pos = [a | a <- argv, not ("--" `isPrefixOf` a)]
      rounds = if null pos then 10 else read (head pos) :: Int
      yields = head ([read (drop 8 f) | f <- flags, "--yield=" `isPrefixOf` f] ++ [0 :: Int])
      stream = [drop 8 f | f <- flags, "--stream" `isPrefixOf` f]
  hSetBuffering stdout LineBuffering
  case stream of
    [] -> pure ()
    (cfg : _) -> startWith (drop 1 cfg)
  forM_ [read (drop 17 f) | f <- flags, "--wait-consumers=" `isPrefixOf` f] $ \n ->
    void (waitForConsumers n 30000)
  me <- myThreadId
  labelThread me "load-main"
  traceEventIO "LOAD begin"
  forM_ [0 .. rounds - 1] $ \r -> do
    dones <- forM [0 .. workers - 1] $ \w -> do
      done <- newEmptyMVar
      let i = r * workers + w
      t <- forkIO $ do
        traceEventIO ("START work " ++ show i)
        replicateM_ yields yield
        let m = foldl' (\acc k -> M.insert ((k * 7919 + i) `mod` 20000) k acc) M.empty [1 .. 10000 :: Int]
            a = M.foldl' (+) 0 m
            b = sum [1 .. 20000 + i]
        s <- evaluate (a `par` (b `pseq` a + b))
        traceEventIO ("STOP work " ++ show i)
        putMVar done s
      labelThread t ("worker-" ++ show i)
      pure done
    mapM_ takeMVar dones
    traceMarkerIO ("round " ++ show r)
    threadDelay 10000
  traceEventIO "LOAD end"
  putStrLn ("user-events " ++ show (2 + 2 * workers * rounds))
  putStrLn ("markers " ++ show rounds)
  putStrLn ("spans " ++ show (workers * rounds))
