-- | The payloads ghc-events decodes, for tests that compare our decoder's
-- reading of an event's fields with the reference parser's (testkit/src/logs.rs
-- parses this). EventlogCheck gives counts and sequences; this gives fields.
--
-- Usage: EventlogDetail FILE
--
-- Output lines:
--   etype <num> <size or -1> <hex of the description>
--   ev <time> <cap or -1> <type> <field>...   for the types below, file order
--   error <text>                              header or events unreadable
--   end                                       always last
-- Fields (text and bytes as hex of their UTF-8 / raw bytes, "-" when empty):
--   19 user message, 58 user marker: <text>
--   181 binary message: <bytes>
--   44 thread label: <thread> <text>
--   160 heap profile begin: <id> <period> <breakdown 1..8>
--   162 sample begin, 165 sample end: <era>
--   164 sample string: <id> <residency> <label>
--   169 info table: <info> <table name> <closure desc> <type desc> <label> <module> <src loc>
--   201 concurrent mark end: <marked objects>
--   207 nonmoving census: <block size> <active segs> <filled segs> <live blocks>
module Main (main) where

import Control.Monad (forM_)
import qualified Data.ByteString as BS
import qualified Data.ByteString.Lazy as BL
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import Data.Word (Word8)
import GHC.RTS.Events
import GHC.RTS.Events.Incremental (readEventLog)
import System.Environment (getArgs)
import System.Exit (ExitCode (..), exitWith)
import System.IO
import Text.Printf (printf)

main :: IO ()
main = do
  args <- getArgs
  file <- case args of
    [f] -> pure f
    _ -> hPutStrLn stderr "usage: EventlogDetail FILE" >> exitWith (ExitFailure 2)
  hSetBinaryMode stdout True
  hSetBuffering stdout (BlockBuffering Nothing)
  bytes <- BL.readFile file
  case readEventLog bytes of
    Left err -> putStrLn ("error " ++ hexText (T.pack err))
    Right (EventLog (Header ets) (Data evs), tailErr) -> do
      forM_ ets $ \et ->
        putStrLn (unwords ["etype", show (num et), maybe "-1" show (size et), hexText (desc et)])
      forM_ evs $ \e -> case fields (evSpec e) of
        Nothing -> pure ()
        Just (ty, fs) ->
          putStrLn (unwords (["ev", show (evTime e), maybe "-1" show (evCap e), show (ty :: Int)] ++ fs))
      forM_ tailErr $ \err -> putStrLn ("error " ++ hexText (T.pack err))
  putStrLn "end"
  hFlush stdout

hexBytes :: BS.ByteString -> String
hexBytes b
  | BS.null b = "-"
  | otherwise = concatMap (printf "%02x" :: Word8 -> String) (BS.unpack b)

hexText :: T.Text -> String
hexText = hexBytes . TE.encodeUtf8

breakdown :: HeapProfBreakdown -> Int
breakdown b = case b of
  HeapProfBreakdownCostCentre -> 1
  HeapProfBreakdownModule -> 2
  HeapProfBreakdownClosureDescr -> 3
  HeapProfBreakdownTypeDescr -> 4
  HeapProfBreakdownRetainer -> 5
  HeapProfBreakdownBiography -> 6
  HeapProfBreakdownClosureType -> 7
  HeapProfBreakdownInfoTable -> 8

fields :: EventInfo -> Maybe (Int, [String])
fields info = case info of
  UserMessage m -> Just (19, [hexText m])
  UserMarker m -> Just (58, [hexText m])
  UserBinaryMessage p -> Just (181, [hexBytes p])
  ThreadLabel t l -> Just (44, [show t, hexText l])
  HeapProfBegin {} ->
    Just (160, [show (heapProfId info), show (heapProfSamplingPeriod info), show (breakdown (heapProfBreakdown info))])
  HeapProfSampleBegin era -> Just (162, [show era])
  HeapProfSampleEnd era -> Just (165, [show era])
  HeapProfSampleString i r l -> Just (164, [show i, show r, hexText l])
  InfoTableProv {} ->
    Just (169, [show (itInfo info)] ++ map hexText
      [itTableName info, itClosureDescT, itTyDesc info, itLabel info, itModule info, itSrcLoc info])
    where itClosureDescT = T.pack (show (itClosureDesc info))
  ConcMarkEnd n -> Just (201, [show n])
  NonmovingHeapCensus bs a f l -> Just (207, [show bs, show a, show f, show l])
  _ -> Nothing
