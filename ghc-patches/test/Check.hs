-- Judges a ghc-patches/test.sh run with ghc-events. Usage: Check DIR, or
-- Check quiet DIR (DIR holds facts, run.eventlog and the driver's snapshots). Prints one line
-- per check ("ok ..." / "FAIL ...") and exits 1 if any failed.
module Main (main) where

import Control.Monad (unless)
import qualified Data.ByteString.Lazy as BL
import Data.IORef
import qualified Data.Map.Strict as M
import qualified Data.Text as T
import GHC.RTS.Events
import GHC.RTS.Events.Incremental (readEventLog)
import System.Environment (getArgs)
import System.Exit

load :: FilePath -> IO ([Event], Maybe String)
load path = do
  bytes <- BL.readFile path
  case readEventLog bytes of
    Left err -> die ("FAIL " ++ path ++ ": " ++ err)
    Right (EventLog _ (Data evs), tailErr) -> pure (evs, tailErr)

userMsg :: Event -> Maybe String
userMsg e = case evSpec e of
  UserMessage m -> Just (T.unpack m)
  _ -> Nothing

isSched, isGc :: EventInfo -> Bool
isSched i = case i of
  RunThread {} -> True
  StopThread {} -> True
  CreateThread {} -> True
  ThreadRunnable {} -> True
  MigrateThread {} -> True
  WakeupThread {} -> True
  _ -> False
isGc i = case i of
  StartGC {} -> True
  EndGC {} -> True
  GCIdle {} -> True
  GCWork {} -> True
  GCDone {} -> True
  GlobalSyncGC {} -> True
  GCStatsGHC {} -> True
  HeapAllocated {} -> True
  HeapSize {} -> True
  HeapLive {} -> True
  RequestSeqGC {} -> True
  RequestParGC {} -> True
  _ -> False

-- Start-up state events, by name, for the resync check.
stateName :: EventInfo -> Maybe String
stateName i = case i of
  CapsetCreate {} -> Just "CapsetCreate"
  CapsetAssignCap {} -> Just "CapsetAssignCap"
  CapCreate {} -> Just "CapCreate"
  RtsIdentifier {} -> Just "RtsIdentifier"
  ProgramArgs {} -> Just "ProgramArgs"
  OsProcessPid {} -> Just "OsProcessPid"
  OsProcessParentPid {} -> Just "OsProcessParentPid"
  WallClockTime {} -> Just "WallClockTime"
  _ -> Nothing

main :: IO ()
main = do
  args <- getArgs
  case args of
    ["quiet", dir] -> checkQuiet dir
    ["api92", dir] -> checkApi92 dir
    [dir] -> checkTest dir
    _ -> die "usage: Check DIR | Check quiet DIR | Check api92 DIR"

-- --eventlog-flush-interval alone brings the quiet capability's event out.
checkQuiet :: FilePath -> IO ()
checkQuiet dir = do
  (final, finalTail) <- load (dir ++ "/run.eventlog")
  (snap, _) <- load (dir ++ "/snapq.eventlog")
  let quiet = [evCap e | e <- snap, userMsg e == Just "quiet-marker"]
  putStrLn ("final log: " ++ show (length final) ++ " events, tail error " ++ show finalTail)
  if finalTail == Nothing && quiet == [Just 1]
    then putStrLn "ok   flush interval wrote the quiet capability's buffer (no flush call)"
    else die ("FAIL flush interval: quiet-marker on caps " ++ show quiet ++ " in the snapshot")

-- GHC 9.2's public flushEventLog(NULL), as patch 6 backports it, brings the
-- quiet capability's event out; NullEventLogWriter accepts and drops.
checkApi92 :: FilePath -> IO ()
checkApi92 dir = do
  (final, finalTail) <- load (dir ++ "/run.eventlog")
  (snap0, _) <- load (dir ++ "/snap0.eventlog")
  (snap1, _) <- load (dir ++ "/snap1.eventlog")
  facts <- map words . lines <$> readFile (dir ++ "/facts")
  let quiet evs = [evCap e | e <- evs, userMsg e == Just "quiet-marker"]
      nullWriter = lookup "null_writer" [(h, t) | (h : t) <- facts]
  putStrLn ("final log: " ++ show (length final) ++ " events, tail error " ++ show finalTail)
  if finalTail == Nothing && null (quiet snap0) && quiet snap1 == [Just 1]
    then putStrLn "ok   flushEventLog(NULL) (9.2 API) wrote the quiet capability's buffer"
    else die ("FAIL flushEventLog(NULL): quiet-marker on caps " ++ show (quiet snap0)
                ++ " before, " ++ show (quiet snap1) ++ " after")
  if nullWriter == Just ["1", "1"]
    then putStrLn "ok   NullEventLogWriter accepts writes and has no other callbacks"
    else die ("FAIL NullEventLogWriter: " ++ show nullWriter)

checkTest :: FilePath -> IO ()
checkTest dir = do
  facts <- map words . lines <$> readFile (dir ++ "/facts")
  let fact k = maybe (error ("no fact " ++ k)) id (lookup k [(h, t) | (h : t) <- facts])
      int :: String -> Int -> Int
      int k n = read (fact k !! n)
  failures <- newIORef (0 :: Int)
  let check name ok detail = do
        putStrLn ((if ok then "ok   " else "FAIL ") ++ name ++ ": " ++ detail)
        unless ok (modifyIORef failures (+ 1))

  (final, finalTail) <- load (dir ++ "/run.eventlog")
  check "final log parses" (finalTail == Nothing)
    (show (length final) ++ " events, tail error " ++ show finalTail)
  check "api version" (int "api_version" 0 == 1) (unwords (fact "api_version"))

  -- 1. flush
  (snap0, _) <- load (dir ++ "/snap0.eventlog")
  (snap1, _) <- load (dir ++ "/snap1.eventlog")
  let quiet evs = [evCap e | e <- evs, userMsg e == Just "quiet-marker"]
  check "quiet capability's event held back before the flush" (null (quiet snap0))
    (show (length snap0) ++ " events in the file before")
  check "flush wrote the quiet capability's buffer" (quiet snap1 == [Just 1])
    ("quiet-marker on caps " ++ show (quiet snap1) ++ " after, first flush "
       ++ unwords (fact "first_flush_us") ++ " us")

  -- 2. class switches
  let tickTime = M.fromList
        [(read n, evTime e) | e <- final, Just ('t' : 'i' : 'c' : 'k' : ' ' : n) <- [userMsg e]]
          :: M.Map Int Timestamp
      at n = M.findWithDefault (error ("no tick " ++ show n)) n tickTime
      count p lo hi = length [e | e <- final, p (evSpec e), evTime e > lo, evTime e < hi]
      [a0, a1, a2] = map (int "window_sg") [0, 1, 2]
      [b1, b2, b3] = map (int "window_u") [0, 1, 2]
  check "switch calls" (fact "set_off" == ["1", "1", "get", "0", "0"] && int "user_off_get" 0 == 0)
    (unwords (fact "set_off"))
  let ctlS = count isSched (at (a0 + 2)) (at (a1 - 2))
      ctlG = count isGc (at (a0 + 2)) (at (a1 - 2))
      offS = count isSched (at (a1 + 2)) (at (a2 - 2))
      offG = count isGc (at (a1 + 2)) (at (a2 - 2))
      -- "On again" ends before the user-event switch below (tick b1): past
      -- it there are no ticks to time by. A fixed a2 + 40 ran into that
      -- window whenever load slowed the ticks below 400/s ("no tick N").
      onS = count isSched (at (a2 + 2)) (at (max (a2 + 3) (min (a2 + 40) (b1 - 2))))
  check "scheduler+GC events off, then on again"
    (ctlS > 0 && ctlG > 0 && offS == 0 && offG == 0 && onS > 0)
    ("sched/gc events: before " ++ show (ctlS, ctlG) ++ ", while off " ++ show (offS, offG)
       ++ ", after " ++ show onS ++ " (ticks " ++ show (a0, a1, a2) ++ ")")
  let present ns = length [n | n <- ns, M.member n tickTime]
      offU = present [b1 + 2 .. b2 - 2]
      onU = present [b2 + 2 .. b3 - 1]
      -- The tick read as b1 (and the one before) may still be on its way
      -- when the switch goes off: the same margin as the window's.
      beforeU = present [1 .. b1 - 2]
  check "user events off, then on again" (offU == 0 && beforeU == b1 - 2 && onU > 0)
    ("ticks present before " ++ show beforeU ++ " of " ++ show (b1 - 2)
       ++ ", while off " ++ show offU ++ " of " ++ show (b2 - b1 - 3)
       ++ ", after " ++ show onU ++ " of " ++ show (b3 - b2 - 2))
  let tc = fact "trace_cap"
  check "TRACE_cap follows the classes" (take 4 tc == ["1", "0", "1", "1"] && tc !! 5 == "0")
    ("TRACE_cap before/all off/one on/restored = " ++ unwords (take 4 tc)
       ++ ", unknown flag accepted = " ++ tc !! 5)

  -- 3. resync
  (snap2, _) <- load (dir ++ "/snap2.eventlog")
  let counts evs = M.fromListWith (+) [(n, 1 :: Int) | e <- evs, Just n <- [stateName (evSpec e)]]
      c1 = counts snap1
      c2 = counts snap2
      doubled = all (\(k, v) -> M.lookup k c2 == Just (2 * v)) (M.toList c1)
      resyncT = at (int "resync_tick" 0)
      late = length [e | e <- snap2, Just _ <- [stateName (evSpec e)], evTime e > resyncT]
  check "resync re-posted the start-up state, written out at once"
    (M.size c1 >= 7 && doubled && late == sum (M.elems c1))
    ("before " ++ show (M.toList c1) ++ "; after resync " ++ show (M.toList c2))

  -- 5. writer swap
  let r = fact "restart"
  check "rts_restartEventLogging swapped and stopped the writer"
    (take 2 r == ["1", "1"] && r !! 3 == "1" && r !! 5 == "hdrb" && read (r !! 7) > (0 :: Int))
    ("swapped/stopped " ++ unwords (take 2 r) ++ ", status after " ++ r !! 3
       ++ " (1 = not configured), new writer got " ++ r !! 7 ++ " bytes starting " ++ r !! 5
       ++ "; the file ended cleanly (parsed above)")

  -- 4. pause figures
  let fs = fact "flush_file_us"
  putStrLn ("info flush pause (file writer, -N2, busy): n=" ++ head fs ++ " min " ++ fs !! 1
              ++ " median " ++ fs !! 2 ++ " p99 " ++ fs !! 3 ++ " max " ++ fs !! 4 ++ " us")
  n <- readIORef failures
  if n == 0 then putStrLn "all checks passed" else die (show n ++ " check(s) failed")
