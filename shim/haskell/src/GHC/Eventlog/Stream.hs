{-# LANGUAGE ForeignFunctionInterface #-}
-- | Stream this program's eventlog out of the process, live, through the
-- elstream shim (@libelstream.a@, linked statically; the program must be
-- built with @-eventlog@).
--
-- > main = withEventlogStream "unix:/tmp/app.sock,ring=64M" $ do ...
--
-- Consumers connect to the endpoint (e.g. @elstream recv unix:/tmp/app.sock@)
-- and receive a valid eventlog: the header, whole blocks, and the data end
-- when the stream stops.
module GHC.Eventlog.Stream
  ( -- * Starting and stopping
    start
  , startWith
  , stop
  , withEventlogStream
    -- * Runtime control
  , setEnabled
  , setClasses
  , sync
  , flush
  , setFlushInterval
  , snapshot
  , stickyMessage
  , control
    -- * User spans and markers (shown by @elstream ui@)
  , withSpan
  , marker
    -- * In-process sinks
  , Sink (..)
  , addSink
    -- * Errors
  , ElstreamError (..)
    -- * Counters
  , Stats (..)
  , stats
  , waitForConsumers
  ) where

import Control.Concurrent (rtsSupportsBoundThreads, runInBoundThread, threadDelay)
import Control.Exception (Exception, bracket_, finally, throwIO)
import Debug.Trace (traceEventIO, traceMarkerIO)
import Data.Word (Word32, Word64)
import Foreign.C.String (CString, peekCString, withCString)
import Foreign.C.Types (CInt (..), CSize (..))
import Foreign.Marshal.Alloc (allocaBytes)
import Data.Word (Word8)
import Foreign.Marshal.Alloc (mallocBytes)
import Foreign.Ptr (FunPtr, Ptr, nullPtr)
import Foreign.Storable (Storable (..))

foreign import ccall safe "elstream_start"
  c_elstream_start :: CString -> IO CInt

foreign import ccall safe "elstream_stop"
  c_elstream_stop :: IO CInt

foreign import ccall unsafe "elstream_last_error"
  c_elstream_last_error :: IO CString

foreign import ccall safe "elstream_get_stats"
  c_elstream_get_stats :: Ptr Stats -> IO CInt

foreign import ccall safe "elstream_set_enabled"
  c_elstream_set_enabled :: CInt -> IO CInt

foreign import ccall safe "elstream_set_classes"
  c_elstream_set_classes :: CString -> IO CInt

foreign import ccall safe "elstream_sync"
  c_elstream_sync :: IO CInt

foreign import ccall safe "elstream_flush"
  c_elstream_flush :: IO CInt

foreign import ccall safe "elstream_set_flush_interval_ms"
  c_elstream_set_flush_interval_ms :: Word32 -> IO CInt

foreign import ccall safe "elstream_snapshot"
  c_elstream_snapshot :: CString -> IO CInt

foreign import ccall safe "elstream_sticky_message"
  c_elstream_sticky_message :: CString -> IO CInt

foreign import ccall safe "elstream_add_sink"
  c_elstream_add_sink :: Ptr () -> Ptr () -> IO CInt

type BytesCb = Ptr () -> Ptr Word8 -> CSize -> IO ()
type DropCb = Ptr () -> Word64 -> Word64 -> IO ()
type StopCb = Ptr () -> IO ()

foreign import ccall "wrapper" mkBytesCb :: BytesCb -> IO (FunPtr BytesCb)
foreign import ccall "wrapper" mkDropCb :: DropCb -> IO (FunPtr DropCb)
foreign import ccall "wrapper" mkStopCb :: StopCb -> IO (FunPtr StopCb)

foreign import ccall safe "elstream_control"
  c_elstream_control :: CString -> CString -> CSize -> IO CInt

-- | A failed elstream call: its negative return code and the text of
-- @elstream_last_error()@.
data ElstreamError = ElstreamError
  { errorCall    :: String
  , errorCode    :: Int
  , errorMessage :: String
  } deriving (Eq, Show)

instance Exception ElstreamError

-- | Runs a C call and, on failure, reads the error text. The text is kept per
-- OS thread, so both calls must run on the same one: an unbound Haskell thread
-- may move between OS threads from one call to the next, hence the bound
-- thread (the non-threaded RTS has a single OS thread anyway).
checked :: String -> IO CInt -> IO ()
checked name call = do
  failure <- onOneOsThread $ do
    rc <- call
    if rc < 0
      then do
        msg <- c_elstream_last_error >>= peekNullable
        pure (Just (ElstreamError name (fromIntegral rc) msg))
      else pure Nothing
  maybe (pure ()) throwIO failure
  where
    peekNullable p = if p == nullPtr then pure "" else peekCString p

onOneOsThread :: IO a -> IO a
onOneOsThread act
  | rtsSupportsBoundThreads = runInBoundThread act
  | otherwise = act

-- | Starts streaming with the configuration in the environment variable
-- @ELSTREAM@, or the default endpoint @unix:/tmp/elstream-<pid>.sock@.
-- Throws 'ElstreamError' on failure.
start :: IO ()
start = checked "elstream_start" (c_elstream_start nullPtr)

-- | Starts streaming with a configuration string,
-- @ENDPOINT[,ring=64M][,start=oldest|now][,linger=2s]@, e.g.
-- @"unix:/tmp/app.sock,ring=16M"@. The empty string means the same as
-- 'start'. Throws 'ElstreamError' on failure (bad configuration, endpoint in
-- use, already started, ...).
startWith :: String -> IO ()
startWith config =
  checked "elstream_start" (withCString config c_elstream_start)

-- | Stops streaming: the RTS buffers are written out, consumers receive the
-- rest and the data end, the endpoint is removed. Throws 'ElstreamError'
-- when not started.
stop :: IO ()
stop = checked "elstream_stop" c_elstream_stop

-- | Streams for the duration of an action (stopping even when it throws).
withEventlogStream :: String -> IO a -> IO a
withEventlogStream config = bracket_ (startWith config) stop

-- | Runs an action as a user span: posts @START name@ before it and
-- @STOP name@ after it, also when it throws (the ghc-events-analyze
-- convention; @elstream ui@ pairs them per thread and tables them by name,
-- numeric words dropped, so @withSpan ("request " ++ show n)@ is @request@).
-- Needs the user class (@u@) on to be seen; costs nothing measurable when off.
withSpan :: String -> IO a -> IO a
withSpan name act = do
  traceEventIO ("START " ++ name)
  act `finally` traceEventIO ("STOP " ++ name)

-- | Posts a marker (a vertical line across every view of @elstream ui@).
marker :: String -> IO ()
marker = traceMarkerIO

-- | The shim's counters (the C struct @elstream_stats@).
data Stats = Stats
  { ringCapacity          :: !Word64 -- ^ size of the ring, bytes
  , ringUsed              :: !Word64 -- ^ bytes of blocks in the ring now
  , blocksWritten         :: !Word64 -- ^ blocks the RTS handed over
  , bytesWritten          :: !Word64
  , blocksEvicted         :: !Word64 -- ^ blocks overwritten to make room
  , bytesEvicted          :: !Word64
  , consumers             :: !Word64 -- ^ consumers connected now
  , bytesDelivered        :: !Word64 -- ^ bytes sent, all consumers together
  , consumerBlocksDropped :: !Word64 -- ^ blocks consumers missed (fell behind)
  , consumerBytesDropped  :: !Word64
  , bytesReplayed         :: !Word64 -- ^ bytes the shim made for readers (replays)
  } deriving (Eq, Show)

-- | Eleven consecutive @uint64_t@: no padding.
instance Storable Stats where
  sizeOf _ = 11 * 8
  alignment _ = alignment (0 :: Word64)
  peek p = Stats <$> f 0 <*> f 1 <*> f 2 <*> f 3 <*> f 4
                 <*> f 5 <*> f 6 <*> f 7 <*> f 8 <*> f 9 <*> f 10
    where f i = peekByteOff p (i * 8)
  poke p s = mapM_ (\(i, v) -> pokeByteOff p (i * 8) v) (zip [0 :: Int ..] fields)
    where
      fields = [ ringCapacity s, ringUsed s, blocksWritten s, bytesWritten s
               , blocksEvicted s, bytesEvicted s, consumers s, bytesDelivered s
               , consumerBlocksDropped s, consumerBytesDropped s, bytesReplayed s ]

-- | The current counters. Throws 'ElstreamError' when not started.
stats :: IO Stats
stats = allocaBytes (sizeOf (undefined :: Stats)) $ \p -> do
  checked "elstream_get_stats" (c_elstream_get_stats p)
  peek p

-- | Waits until at least @n@ consumers are connected, or @timeoutMs@
-- milliseconds have passed (0: for ever); 'True' if they are. A program that
-- must not run ahead of its first reader (a demo, a test, a short job) calls
-- it after 'startWith'. Polls 'stats' every 10 ms.
waitForConsumers :: Int -> Int -> IO Bool
waitForConsumers n timeoutMs = go (0 :: Int)
  where
    go waited = do
      c <- consumers <$> stats
      if fromIntegral c >= n
        then pure True
        else if timeoutMs > 0 && waited >= timeoutMs
          then pure False
          else threadDelay 10000 >> go (waited + 10)

-- | Switches streaming on or off as a whole (the RTS stops posting events
-- while off when the shim is linked statically).
setEnabled :: Bool -> IO ()
setEnabled on = checked "elstream_set_enabled" (c_elstream_set_enabled (if on then 1 else 0))

-- | Changes the event classes: @"sgu"@ sets them, @"+n-s"@ adds and removes
-- (s scheduler, g GC, n nonmoving GC, p sparks sampled, f sparks full, u user).
setClasses :: String -> IO ()
setClasses change = checked "elstream_set_classes" (withCString change c_elstream_set_classes)

-- | Posts the RTS's start-up state again (capsets, capabilities, program
-- identity, wall clock) and flushes.
sync :: IO ()
sync = checked "elstream_sync" c_elstream_sync

-- | Writes out every capability's eventlog buffer now.
flush :: IO ()
flush = checked "elstream_flush" c_elstream_flush

-- | Flushes every so many milliseconds; 0 switches the periodic flush off.
setFlushInterval :: Int -> IO ()
setFlushInterval ms =
  checked "elstream_set_flush_interval_ms" (c_elstream_set_flush_interval_ms (fromIntegral (max 0 ms)))

-- | Writes the ring (header, state, blocks) to @NAME.eventlog@ in the
-- snapshot directory without clearing it.
snapshot :: String -> IO ()
snapshot name = checked "elstream_snapshot" (withCString name c_elstream_snapshot)

-- | Posts a user message that every consumer joining later also receives.
stickyMessage :: String -> IO ()
stickyMessage msg = checked "elstream_sticky_message" (withCString msg c_elstream_sticky_message)

-- | Runs one control command line (as @elstream ctl@ sends it, e.g.
-- @"status"@) and returns the reply text; throws 'ElstreamError' on failure.
control :: String -> IO String
control command = do
  let size = 65536
  allocaBytes size $ \buf -> do
    checked "elstream_control" (withCString command $ \c -> c_elstream_control c buf (fromIntegral size))
    peekCString buf

-- | An in-process sink. The callbacks run on the shim's I/O thread (never on
-- a thread of yours, never on an RTS thread): the header once, then every
-- whole block, drop notices (blocks, bytes) when the sink fell a ring behind,
-- and the stop. Byte pointers are valid only during the call: copy what you
-- keep. Slow callbacks delay the socket consumers, not the program.
data Sink = Sink
  { sinkHeader :: Ptr Word8 -> Int -> IO ()
  , sinkBlock  :: Ptr Word8 -> Int -> IO ()
  , sinkDrop   :: Word64 -> Word64 -> IO ()
  , sinkStop   :: IO ()
  }

-- | Adds a sink (after 'start'). Its callbacks live as long as the program.
addSink :: Sink -> IO ()
addSink sink = do
  hdr <- mkBytesCb (\_ p n -> sinkHeader sink p (fromIntegral n))
  blk <- mkBytesCb (\_ p n -> sinkBlock sink p (fromIntegral n))
  drp <- mkDropCb (\_ b n -> sinkDrop sink b n)
  stp <- mkStopCb (\_ -> sinkStop sink)
  -- elstream_sink_vtable: u32 abi_version (= 1), then four function pointers.
  vt <- mallocBytes 40
  pokeByteOff vt 0 (1 :: Word32)
  pokeByteOff vt 8 hdr
  pokeByteOff vt 16 blk
  pokeByteOff vt 24 drp
  pokeByteOff vt 32 stp
  checked "elstream_add_sink" (c_elstream_add_sink vt nullPtr)
