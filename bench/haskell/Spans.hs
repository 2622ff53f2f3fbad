-- | A log with many user span names for the metrics scrape bench:
-- `Spans N K` posts K START/STOP pairs for each of N names (sa, sb, ...,
-- letters only: digits in a span key are folded away), then exits.
module Main (main) where

import Control.Monad (forM_)
import Debug.Trace (traceEventIO)
import System.Environment (getArgs)

main :: IO ()
main = do
  [n, k] <- map read <$> getArgs
  let names = take n [['s', a, b] | a <- ['a' .. 'z'], b <- ['a' .. 'z']]
  forM_ [1 .. k :: Int] $ \_ -> forM_ names $ \nm -> do
    traceEventIO ("START " ++ nm)
    traceEventIO ("STOP " ++ nm)
