-- | Runs against the patched RTS (ghc-patches/): prints the shim's status,
-- then uses flush, class switches and sync, which should go through the
-- RTS's own API. Waits for one consumer first.
--
-- > Patched CONFIG
module Main (main) where

import Control.Concurrent (threadDelay)
import Control.Monad (replicateM_, when)
import Debug.Trace (traceEventIO, traceMarkerIO)
import GHC.Eventlog.Stream
import System.Environment (getArgs)
import System.IO

main :: IO ()
main = do
  [cfg] <- getArgs
  hSetBuffering stdout LineBuffering
  startWith cfg
  _ <- waitForConsumers 1 0
  control "status" >>= putStr
  traceMarkerIO "patched begin"
  flush
  setClasses "-s"
  replicateM_ 10 (traceEventIO "patched user" >> threadDelay 1000)
  setClasses "-u"
  replicateM_ 5 (traceEventIO "hidden user" >> threadDelay 1000)
  setClasses "+su"
  sync
  traceMarkerIO "patched end"
  control "status" >>= putStr
  stop
  putStrLn "done"
