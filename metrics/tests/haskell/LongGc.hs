-- | The trigger tests' program: `LongGc long N` builds a large live
-- structure (a Data.Map of N entries) and forces three major GCs, each
-- copying all of it (long pauses); `LongGc quiet` only allocates a little
-- and forces three major GCs of an almost empty heap (short pauses).
-- Streams through the shim (--stream=CONFIG) once a consumer is connected.
-- Prints "major-gcs 3" at the end.
module Main (main) where

import Control.Concurrent (threadDelay)
import Control.Monad (forM_, when)
import qualified Data.Map.Strict as M
import Data.List (foldl', isPrefixOf)
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream (startWith, stop, waitForConsumers)
import System.Environment (getArgs)
import System.Mem (performMajorGC)

main :: IO ()
main = do
  args <- getArgs
  let cfg = head ([drop 9 a | a <- args, "--stream=" `isPrefixOf` a] ++ [""])
      pos = [a | a <- args, not ("--" `isPrefixOf` a)]
      long = take 1 pos == ["long"]
      n = if length pos > 1 then read (pos !! 1) else 1000000 :: Int
  startWith cfg
  _ <- waitForConsumers 1 60000
  let m = if long then foldl' (\acc k -> M.insert k k acc) M.empty [1 .. n] else M.singleton 1 1
  M.size m `seq` traceEventIO "built"
  forM_ [1 .. 3 :: Int] $ \i -> do
    performMajorGC
    traceEventIO ("major " ++ show i)
    threadDelay 300000
  -- Keep the structure live through the GCs.
  when (M.foldl' (+) 0 m < 0) $ putStrLn "impossible"
  stop
  putStrLn "major-gcs 3"
