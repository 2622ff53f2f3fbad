-- | Writes numbered user messages fast (bursts of 2000, about 40 MB/s at
-- most: a rate a consumer keeps up with on a busy 2-core box) while the test
-- snapshots the ring from the control socket: waits for one consumer, writes
-- "msg I" for I in 1..N, stops the stream (consumers get the tail and the
-- data end) and prints the consumer drop counter.
--
-- > Snapshots CONFIG N
module Main (main) where

import Control.Concurrent (threadDelay)
import Control.Monad
import Debug.Trace (traceEventIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg, n] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  _ <- waitForConsumers 1 0
  putStrLn "connected"
  forM_ [1, 2001 .. read n :: Int] $ \from -> do
    forM_ [from .. min (read n) (from + 1999)] $ \i -> traceEventIO ("msg " ++ show i)
    threadDelay 1000
  putStrLn "wrote"
  stop
  s <- stats
  putStrLn ("consumer-blocks-dropped " ++ show (consumerBlocksDropped s))
