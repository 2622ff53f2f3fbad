{-# LANGUAGE BangPatterns #-}
{-# OPTIONS_GHC -Wno-overlapping-patterns #-}
-- | Judges an eventlog with ghc-events (the independent reference parser) and
-- prints a line-based summary for testkit (testkit/src/lib.rs parses it).
--
-- Usage: EventlogCheck [--events] FILE   (FILE "-" = stdin)
--
-- Output lines, in this order:
--   etype <num> <size or -1>        one per event type in the header
--   user <text>                     each UserMessage; backslash, newline and CR
--                                   escaped as two characters: \\ \n \r
--   marker <text>                   each UserMarker (escaped the same way)
--   ev <time> <cap or -1> <type>    with --events: every event in file order
--   events <n>                      total events parsed
--   type <num> <count>              per event type (unmapped constructors: 65535)
--   unmapped <count> <names>        events whose constructor has no known number
--   cap <cap or -1> <count>         per capability (-1 = no capability)
--   backwards <count>               events earlier than the previous one on the same
--                                   cap (informational: GHC posts some GC events late)
--   time <first> <last>             smallest and largest timestamp (if any events)
--   error <msg>                     header unreadable, or an exception while parsing
--   tail <msg>                      readEventLog's Maybe String: a decoding error that
--                                   ended the events early (a cut-off last event is
--                                   not one: ghc-events drops it; see noend)
--   frames <n> <blocks>             our own framing pass (type/time/size only): all
--                                   events before the data end, and how many of
--                                   them are block markers (ghc-events hides those)
--   dataend <trailing>              the data end (0xffff) was reached; bytes after it
--   noend <partial>                 input ended without a data end; bytes of an
--                                   incomplete last event (0 = ended between events)
--   badtype <offset> <type>         framing met a type the header lacks (offset
--                                   counted from the first byte after datb)
--   end                             always last; its absence means the checker died
module Main (main) where

import Control.Exception (SomeException, evaluate, try)
import Control.Monad (forM_, when)
import qualified Data.ByteString as BS
import qualified Data.ByteString.Builder as B
import qualified Data.ByteString.Lazy as BL
import Data.Int (Int64)
import Data.Word (Word16)
import qualified Data.IntMap.Strict as IM
import qualified Data.Map.Strict as M
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import qualified Data.ByteString.Lazy.Internal as BL (ByteString (..))
import GHC.RTS.Events
import GHC.RTS.Events.Incremental (Decoder (..), decodeEvents, readHeader)
import System.Environment (getArgs)
import System.Exit (exitWith, ExitCode(..))
import System.IO

data St = St
  { stEvents    :: !Int
  , stTypes     :: !(IM.IntMap Int)
  , stCaps      :: !(IM.IntMap Int)
  , stLastTime  :: !(IM.IntMap Timestamp)
  , stBackwards :: !Int
  , stMin       :: !Timestamp
  , stMax       :: !Timestamp
  , stUnmapped  :: !(M.Map String Int)
  }

main :: IO ()
main = do
  argv <- getArgs
  (withEvents, file) <- case argv of
    ["--events", f] -> pure (True, f)
    [f] -> pure (False, f)
    _ -> do
      hPutStrLn stderr "usage: EventlogCheck [--events] FILE"
      exitWith (ExitFailure 2)
  hSetBinaryMode stdout True
  hSetBuffering stdout (BlockBuffering (Just 65536))
  bytes <- if file == "-" then BL.getContents else BL.readFile file
  case readHeader bytes of
    Left err -> line (B.string7 "error " <> text (T.pack err))
    Right (hdr@(Header ets), rest) -> do
      forM_ ets $ \et ->
        line (B.string7 "etype " <> B.word16Dec (num et) <> B.char7 ' '
              <> maybe (B.string7 "-1") B.word16Dec (size et))
      (st, fr, problem) <- walk withEvents hdr rest
      summary st
      forM_ problem line
      line (B.string7 "frames " <> B.intDec (frN fr) <> B.char7 ' ' <> B.intDec (frBlocks fr))
      line $ case frEnd fr of
        Just (DataEnd trailing) -> B.string7 "dataend " <> B.int64Dec trailing
        Just (BadType off ty) ->
          B.string7 "badtype " <> B.int64Dec off <> B.char7 ' ' <> B.intDec ty
        Nothing -> B.string7 "noend " <> B.intDec (BS.length (frCarry fr))
  line (B.string7 "end")
  hFlush stdout

line :: B.Builder -> IO ()
line b = B.hPutBuilder stdout (b <> B.char7 '\n')

-- | Backslash, newline and carriage return escaped so one message is one line.
text :: T.Text -> B.Builder
text m
  | T.any special m = TE.encodeUtf8Builder (T.concatMap esc m)
  | otherwise = TE.encodeUtf8Builder m
  where
    special ch = ch == '\\' || ch == '\n' || ch == '\r'
    esc '\\' = T.pack "\\\\"
    esc '\n' = T.pack "\\n"
    esc '\r' = T.pack "\\r"
    esc ch = T.singleton ch

summary :: St -> IO ()
summary st = do
  line (B.string7 "events " <> B.intDec (stEvents st))
  forM_ (IM.toList (stTypes st)) $ \(t, n) ->
    line (B.string7 "type " <> B.intDec t <> B.char7 ' ' <> B.intDec n)
  let unm = stUnmapped st
  when (not (M.null unm)) $
    line (B.string7 "unmapped " <> B.intDec (sum (M.elems unm)) <> B.char7 ' '
          <> B.string7 (unwords (M.keys unm)))
  forM_ (IM.toList (stCaps st)) $ \(c, n) ->
    line (B.string7 "cap " <> B.intDec c <> B.char7 ' ' <> B.intDec n)
  line (B.string7 "backwards " <> B.intDec (stBackwards st))
  when (stEvents st > 0) $
    line (B.string7 "time " <> B.word64Dec (stMin st) <> B.char7 ' ' <> B.word64Dec (stMax st))

-- | Folds over the events the way ghc-events' 'readEventLog' reads them
-- (readHeader, then readEvents: events up to the first decoding error, which
-- is its Maybe String, reported as "tail"), but streaming: the lazy pair
-- readEvents returns keeps every event alive until the error is forced, too
-- much for a big log. The same chunks feed the framing walk, so the input is
-- read once and never held.
walk :: Bool -> Header -> BL.ByteString -> IO (St, Fr, Maybe B.Builder)
walk withEvents hdr = go st0 fr0 (decodeEvents hdr)
  where
    st0 = St 0 IM.empty IM.empty IM.empty 0 maxBound 0 M.empty
    fr0 = Fr 0 0 0 BS.empty Nothing
    sizes = IM.fromList [(fromIntegral (num et), size et) | et <- eventTypes hdr]
    go !st !fr dec bytes = do
      -- ghc-events can throw from pure code on bad input (e.g. an event
      -- type its parser table lacks): catch it here so the framing walk
      -- still sees the rest of the input.
      r <- try (evaluate dec)
      case r of
        Left e -> finish st fr bytes
          (Just (B.string7 "error exception: " <> text (T.pack (show (e :: SomeException)))))
        Right (Produce e dec') -> do
          r' <- try (step st e)
          case r' of
            Left ex -> finish st fr bytes
              (Just (B.string7 "error exception: " <> text (T.pack (show (ex :: SomeException)))))
            Right st' -> go st' fr dec' bytes
        Right (Consume k) -> case bytes of
          BL.Empty -> pure (st, fr, Nothing)
          BL.Chunk c cs -> go st (feed sizes fr c) (k c) cs
        Right (Done _) -> finish st fr bytes Nothing
        Right (Error _ err) -> finish st fr bytes (Just (B.string7 "tail " <> text (T.pack err)))
    finish st fr bytes problem =
      pure (st, BL.foldlChunks (feed sizes) fr bytes, problem)
    step st e = do
      let info = evSpec e
          t = evTime e
          c = maybe (-1) id (evCap e)
          (ty, unm) = case eventNum info of
            Just n -> (n, stUnmapped st)
            Nothing -> (65535, M.insertWith (+) (conName info) 1 (stUnmapped st))
      case info of
        UserMessage m -> line (B.string7 "user " <> text m)
        UserMarker m -> line (B.string7 "marker " <> text m)
        _ -> pure ()
      when withEvents $
        line (B.string7 "ev " <> B.word64Dec t <> B.char7 ' ' <> B.intDec c
              <> B.char7 ' ' <> B.intDec ty)
      let back = case IM.lookup c (stLastTime st) of
            Just prev | t < prev -> 1
            _ -> 0
      pure $! st { stEvents = stEvents st + 1
                 , stTypes = IM.insertWith (+) ty 1 (stTypes st)
                 , stCaps = IM.insertWith (+) c 1 (stCaps st)
                 , stLastTime = IM.insert c t (stLastTime st)
                 , stBackwards = stBackwards st + back
                 , stMin = min t (stMin st)
                 , stMax = max t (stMax st)
                 , stUnmapped = unm
                 }

-- | The framing walk: ghc-events neither reports the data end nor minds a
-- truncated last event, so step over the events by their header sizes to
-- say how the stream ended.
data Fr = Fr
  { frN      :: !Int           -- ^ whole events seen, block markers included
  , frBlocks :: !Int           -- ^ block markers (type 18) among them
  , frOff    :: !Int64         -- ^ offset of frCarry from the first data byte
  , frCarry  :: !BS.ByteString -- ^ start of an event not yet complete
  , frEnd    :: !(Maybe Ending)
  }

data Ending = DataEnd !Int64 | BadType !Int64 !Int

feed :: IM.IntMap (Maybe Word16) -> Fr -> BS.ByteString -> Fr
feed sizes fr chunk = case frEnd fr of
  Just (DataEnd trailing) -> fr { frEnd = Just (DataEnd (trailing + len64 chunk)) }
  Just BadType {} -> fr
  Nothing -> go fr { frCarry = BS.empty } (frCarry fr <> chunk) 0
  where
    len64 = fromIntegral . BS.length
    w16 b i = fromIntegral (BS.index b i) * 256 + fromIntegral (BS.index b (i + 1)) :: Int
    go !f buf !i
      | avail < 2 = stop
      | ty == 0xffff = f { frEnd = Just (DataEnd (fromIntegral (avail - 2))), frOff = here }
      | otherwise = case IM.lookup ty sizes of
          Nothing -> f { frEnd = Just (BadType here ty), frOff = here }
          Just sz -> case sz of
            Just fixed -> event (10 + fromIntegral fixed)
            Nothing
              | avail < 12 -> stop
              | otherwise -> event (12 + w16 buf (i + 10))
      where
        avail = BS.length buf - i
        ty = w16 buf i
        here = frOff f + fromIntegral i
        stop = f { frCarry = BS.copy (BS.drop i buf), frOff = here }
        event n
          | avail < n = stop
          | otherwise = go f { frN = frN f + 1
                             , frBlocks = frBlocks f + (if ty == 18 then 1 else 0) }
                           buf (i + n)

conName :: EventInfo -> String
conName = takeWhile (/= ' ') . show

-- | GHC's event type number for a ghc-events constructor (EventLogFormat.h of
-- GHC 9.x and ghc-events' own include/EventLogFormat.h for Eden, Mercury and
-- perf events). ghc-events also parses the deprecated pre-7 forms 5 (run
-- spark) and 6 (steal spark) into SparkRun and SparkSteal; those come out as
-- 38 and 39 here.
eventNum :: EventInfo -> Maybe Int
eventNum info = case info of
  EventBlock {} -> Just 18
  UnknownEvent { ref = r } -> Just (fromIntegral r)
  Startup {} -> Just 17
  Shutdown -> Just 7
  CreateThread {} -> Just 0
  RunThread {} -> Just 1
  StopThread {} -> Just 2
  ThreadRunnable {} -> Just 3
  MigrateThread {} -> Just 4
  WakeupThread {} -> Just 8
  ThreadLabel {} -> Just 44
  CreateSparkThread {} -> Just 15
  SparkCounters {} -> Just 34
  SparkCreate -> Just 35
  SparkDud -> Just 36
  SparkOverflow -> Just 37
  SparkRun -> Just 38
  SparkSteal {} -> Just 39
  SparkFizzle -> Just 40
  SparkGC -> Just 41
  TaskCreate {} -> Just 55
  TaskMigrate {} -> Just 56
  TaskDelete {} -> Just 57
  RequestSeqGC -> Just 11
  RequestParGC -> Just 12
  StartGC -> Just 9
  GCWork -> Just 21
  GCIdle -> Just 20
  GCDone -> Just 22
  EndGC -> Just 10
  GlobalSyncGC -> Just 54
  GCStatsGHC {} -> Just 53
  MemReturn {} -> Just 90
  HeapAllocated {} -> Just 49
  HeapSize {} -> Just 50
  BlocksSize {} -> Just 91
  HeapLive {} -> Just 51
  HeapInfoGHC {} -> Just 52
  CapCreate {} -> Just 45
  CapDelete {} -> Just 46
  CapDisable {} -> Just 47
  CapEnable {} -> Just 48
  CapsetCreate {} -> Just 25
  CapsetDelete {} -> Just 26
  CapsetAssignCap {} -> Just 27
  CapsetRemoveCap {} -> Just 28
  RtsIdentifier {} -> Just 29
  ProgramArgs {} -> Just 30
  ProgramEnv {} -> Just 31
  OsProcessPid {} -> Just 32
  OsProcessParentPid {} -> Just 33
  WallClockTime {} -> Just 43
  Message {} -> Just 16
  UserMessage {} -> Just 19
  UserMarker {} -> Just 58
  Version {} -> Just 23
  ProgramInvocation {} -> Just 24
  EdenStartReceive -> Just 60
  EdenEndReceive -> Just 61
  CreateProcess {} -> Just 62
  KillProcess {} -> Just 63
  AssignThreadToProcess {} -> Just 64
  CreateMachine {} -> Just 65
  KillMachine {} -> Just 66
  SendMessage {} -> Just 67
  ReceiveMessage {} -> Just 68
  SendReceiveLocalMessage {} -> Just 69
  InternString {} -> Just 42
  MerStartParConjunction {} -> Just 100
  MerEndParConjunction {} -> Just 101
  MerEndParConjunct {} -> Just 102
  MerCreateSpark {} -> Just 103
  MerFutureCreate {} -> Just 104
  MerFutureWaitNosuspend {} -> Just 105
  MerFutureWaitSuspended {} -> Just 106
  MerFutureSignal {} -> Just 107
  MerLookingForGlobalThread -> Just 108
  MerWorkStealing -> Just 109
  MerLookingForLocalSpark -> Just 112
  MerReleaseThread {} -> Just 110
  MerCapSleeping -> Just 111
  MerCallingMain -> Just 113
  PerfName {} -> Just 140
  PerfCounter {} -> Just 141
  PerfTracepoint {} -> Just 142
  HeapProfBegin {} -> Just 160
  HeapProfCostCentre {} -> Just 161
  HeapProfSampleBegin {} -> Just 162
  HeapProfSampleCostCentre {} -> Just 163
  HeapProfSampleString {} -> Just 164
  HeapProfSampleEnd {} -> Just 165
  HeapBioProfSampleBegin {} -> Just 166
  ProfSampleCostCentre {} -> Just 167
  ProfBegin {} -> Just 168
  InfoTableProv {} -> Just 169
  UserBinaryMessage {} -> Just 181
  ConcMarkBegin -> Just 200
  ConcMarkEnd {} -> Just 201
  ConcSyncBegin -> Just 202
  ConcSyncEnd -> Just 203
  ConcSweepBegin -> Just 204
  ConcSweepEnd -> Just 205
  ConcUpdRemSetFlush {} -> Just 206
  NonmovingHeapCensus {} -> Just 207
  TickyCounterDef {} -> Just 210
  TickyCounterSample {} -> Just 211
  TickyBeginSample -> Just 212
  -- A newer ghc-events may add constructors: they land in 'unmapped'.
  _ -> Nothing
