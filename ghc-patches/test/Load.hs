-- Load for ghc-patches/test.sh: busy Haskell threads on capability 0, a quiet
-- thread on capability 1, and a tick thread whose user events serve as time
-- fences. driver.c runs the RTS calls from its own (foreign) OS thread.
module Main (main) where

import Control.Concurrent
import Control.Monad
import Data.IORef
import Debug.Trace (traceEventIO)
import Foreign.C
import System.Environment (getArgs)
import System.Mem (performMinorGC)

foreign import ccall safe "driver_start"
  driverStart :: CString -> CString -> CString -> IO CInt
foreign import ccall unsafe "driver_set_tick" setTick :: CInt -> IO ()
foreign import ccall unsafe "driver_done" driverDone :: IO CInt

main :: IO ()
main = do
  [mode, outDir, logPath] <- getArgs
  stop <- newIORef False
  finished <- newEmptyMVar
  -- The quiet capability: one event, then nothing.
  _ <- forkOn 1 $ do
    traceEventIO "quiet-marker"
    threadDelay 600000000
  let busy k = do
        let go :: Int -> Integer -> IO ()
            go i acc = do
              s <- if i `mod` 2000 == 0 then yield >> readIORef stop else pure False
              if s then putMVar finished () else go (i + 1) (acc + fromIntegral (i * k) `mod` 1000003)
        go 1 0
  forM_ [1, 2] $ \k -> forkOn 0 (busy k)
  _ <- forkOn 0 $ do
    let tick :: Int -> IO ()
        tick n = do
          s <- readIORef stop
          unless s $ do
            setTick (fromIntegral n)
            traceEventIO ("tick " ++ show n)
            -- GC events at a steady rate, whatever the optimiser does.
            when (n `mod` 5 == 0) performMinorGC
            threadDelay 1000
            tick (n + 1)
    tick 1
  rc <- withCString mode $ \m -> withCString outDir $ \o ->
          withCString logPath $ \l -> driverStart m o l
  when (rc /= 0) $ fail "driver_start failed"
  let wait = do
        d <- driverDone
        when (d == 0) $ threadDelay 10000 >> wait
  wait
  writeIORef stop True
  replicateM_ 2 (takeMVar finished)
