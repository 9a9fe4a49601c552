//! Command-line grammar (clap). Help texts are the user's manual: say what, why and an example.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "labpipe",
    // The build's commit (crates/cli/build.rs), so a bug report names the exact build.
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LABPIPE_BUILD_COMMIT"), ")"),
    about = "Get recording sessions from the lab PC into the cloud safely, and back onto compute nodes.",
    long_about = "LabPipe checks recording session folders (named YYYYMMDD_HHMMSS) on the lab PC, uploads them to S3 \
without ever overwriting raw data, and lets researchers query the catalog and sync preprocessed files.",
    after_help = "Exit codes: 0 = all fine, 1 = a session failed / is not ready or an operation failed, 2 = usage error.\n\
Lab schema: --schema FILE, else $LABPIPE_SCHEMA, else labpipe.toml in the checked folder, then in its parent, then in the current directory, else the built-in default."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sanity checks on session folders and say what blocks each one
    #[command(
        after_help = "Examples:\n  labpipe check D:\\recordings\n  labpipe check 20210301_161221 --json\n\n\
Verdicts: pass = ready; warn = ready, but look at the warnings; wait = still being written, re-check later; fail = blocked until fixed."
    )]
    Check(CheckArgs),
    /// Check session folders, then upload the ready ones to S3 (resumable, verified, never overwriting)
    #[command(
        after_help = "Examples:\n  labpipe upload D:\\recordings --bucket lab-raw\n  LABPIPE_RAW_BUCKET=lab-raw labpipe upload 20210301_161221 --json\n\n\
Objects go to s3://BUCKET/raw/<session>/<file>; raw/<session>/manifest.json is written last, after every file is verified.\n\
An interrupted upload resumes where it stopped: run the same command again. Existing objects are never overwritten:\n\
identical ones count as already uploaded, different ones fail the session as a conflict.\n\
A corrected session goes up as a new revision: labpipe upload --revise --reason \"channel 3 was mislabelled\" FOLDER.\n\
Credentials and region come from the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...); AWS_ENDPOINT_URL selects another endpoint.\n\n\
Exit codes: 0 = every ready session is uploaded (or already was; sessions still being written are skipped),\n\
1 = a session failed (check failure, conflict, file changed, network) or the bucket/credentials are wrong, 2 = usage error."
    )]
    Upload(UploadArgs),
    /// Show where sessions are in the cloud pipeline: status, latest error and history
    #[command(
        after_help = "Examples:\n  labpipe status                      # recent sessions, by status\n  labpipe status 20210301_161221      # one session: status, latest error, history\n  labpipe status 20210301_161221 --json\n\n\
The catalog table comes from --table, else $LABPIPE_TABLE, else CatalogTable in .labpipe/stack/outputs.json (written by scripts/deploy-local.sh; see --stack-outputs).\n\
Exit codes: 0 = shown; 1 = a named session is FAILED or not in the catalog, or the catalog cannot be read; 2 = usage error."
    )]
    Status(StatusArgs),
    /// Find sessions in the catalog with a filter, and list their preprocessed files
    #[command(
        after_help = "Examples:\n  labpipe query 'fatigue > 5 and date >= 2021-03-01 and date < 2021-04-01'\n  labpipe query 'hardware_model = X200 and status = processed' --files\n  labpipe query 'subject_id in (S1, S2)' --json\n\n\
Filter language: comparisons (= != < <= > >=) on metadata fields and session, date, time, status, total_bytes, files;\n\
in (a, b), contains \"text\", FIELD exists; and, or, not, parentheses. An empty filter matches every session.\n\
--files lists s3://bucket/key, size and SHA-256 of each processed file (pipeline version: --pipeline-version, else each session's latest).\n\
The catalog table comes from --table, $LABPIPE_TABLE or CatalogTable in .labpipe/stack/outputs.json.\n\n\
Exit codes: 0 = listed (possibly nothing; a note goes to stderr), 1 = the catalog cannot be read, 2 = invalid filter or flags."
    )]
    Query(QueryArgs),
    /// Download the preprocessed files of the sessions a filter selects (parallel, resumable, verified)
    #[command(
        after_help = "Examples:\n  labpipe sync --where 'fatigue > 5 and hardware_model = X200' --dest /data/study\n  labpipe sync --where 'date >= 2021-03-01 and date < 2021-04-01' --dest /data/march --include '*.parquet' --json\n  labpipe sync --where 'fatigue > 5' --dest /data/study --save-snapshot study-v1.json\n  labpipe sync --snapshot study-v1.json --dest /data/study-again\n\n\
Files go to DEST/<session>/<path> (raw files, with --raw, to DEST/<session>/raw/<path>, read-only). Each file is\n\
written under a temporary name and renamed only after its SHA-256 equals the catalog's; an object changed behind the\n\
catalog is refused. Re-running transfers only what is missing or changed (DEST/.labpipe-sync/state.json; --verify\n\
re-hashes everything); an interrupted run resumes its partial downloads. DEST/labpipe-sync.json records the filter,\n\
time, sessions and files. Credentials come from the standard AWS chain (instance role on EC2); AWS_ENDPOINT_URL selects\n\
another endpoint.\n\n\
Exit codes: 0 = everything selected is in DEST and verified, 1 = a file failed or nothing could be synced (no match,\n\
not processed yet), 2 = invalid filter or flags.\n\n\
Reproducible datasets: --save-snapshot FILE records, after a complete sync, every file's bucket, key, S3 version id,\n\
size and SHA-256. `labpipe sync --snapshot FILE --dest DIR` later fetches exactly those versions (the buckets are\n\
versioned), verified against the recorded SHA-256, even after the objects were overwritten by reprocessing. Older\n\
versions of processed objects expire 90 days after they are replaced; raw ones are kept."
    )]
    Sync(SyncArgs),
    /// Free lab disk: delete local session folders that are processed and provably safe in S3
    #[command(
        after_help = "Examples:\n  labpipe clean --older-than 30d --root D:\\recordings --dry-run\n  labpipe clean --older-than 30d D:\\recordings\\20210301_161221\n  labpipe clean --older-than 8w --root /data/lab --json\n\n\
A folder is deleted only when all of these hold, else it is kept with the reason:\n\
  - it was recorded longer ago than --older-than (from its name, YYYYMMDD_HHMMSS);\n\
  - the catalog has the session as PROCESSED;\n\
  - its manifest in S3 is the one the catalog verified;\n\
  - every file in the folder is listed in that manifest (Thumbs.db, .DS_Store and the like aside) and still has the\n    uploaded size and SHA-256;\n\
  - every file of the manifest is in S3 with its size and S3's stored CRC64NVME equal to the manifest's.\n\
S3 and the catalog are only read, never changed. Run with --dry-run first to see what would go and the space freed.\n\
The catalog table comes from --table, $LABPIPE_TABLE or CatalogTable in .labpipe/stack/outputs.json.\n\n\
Exit codes: 0 = every folder was deleted or rightly kept, 1 = a folder could not be checked or deleted (network,\n\
credentials, permissions), 2 = usage error."
    )]
    Clean(CleanArgs),
    /// Check a configuration end to end and say what to fix: credentials, stack outputs, buckets, catalog, queues, failures
    #[command(
        after_help = "Examples:\n  labpipe doctor\n  labpipe doctor --stack-outputs .labpipe/stack/outputs.json --json\n\n\
Checks, in order: stack outputs readable; AWS credentials and region found; the raw bucket (list raw/) and the\n\
processed bucket reachable with this identity; the catalog table ACTIVE; ingest and preprocess queue depths; both\n\
dead-letter queues empty; no session FAILED in the last 7 days. Each line says ok / warn / skipped / FAIL and, when not\n\
ok, what to do. Checks this identity's role may not make (a lab PC's role reads no queue) are skipped, not failed.\n\n\
Exit codes: 0 = no check failed, 1 = a check failed, 2 = usage error."
    )]
    Doctor(DoctorArgs),
    /// Re-run preprocessing with another pipeline version for the sessions a filter selects
    #[command(
        after_help = "Examples:\n  labpipe reprocess --where 'date >= 2021-03-01' --pipeline-version 2 --dry-run\n  labpipe reprocess --where 'hardware_model = X200' --pipeline-version 2 --json\n\n\
Sends one preprocessing request per selected session to the preprocess queue; the backend writes the outputs to\n\
s3://PROCESSED/v<N>/<session>/ and records them in the catalog beside the other versions, whose files stay untouched.\n\
Left out, with the reason: sessions never cataloged from a manifest, sessions a run holds now, and sessions already\n\
processed at version N or later. Follow the runs with `labpipe status`; then `labpipe query --files --pipeline-version N`\n\
and `labpipe sync --pipeline-version N` read the new outputs (without the flag: the version of each session's latest run).\n\
The queue comes from $LABPIPE_PREPROCESS_QUEUE_URL, else PreprocessQueueUrl in the stack outputs file; the catalog\n\
table as for `labpipe query`. Needs credentials that may send to the preprocess queue (an operator's, not the lab PC's).\n\n\
Exit codes: 0 = every selected session was sent or rightly left out, 1 = no session matched, a send failed or the\n\
catalog cannot be read, 2 = invalid filter or flags."
    )]
    Reprocess(ReprocessArgs),
    /// Move dead-letter messages back to their queue, and re-run FAILED sessions whose cause is fixed
    #[command(
        after_help = "Examples:\n  labpipe redrive --dry-run                      # what sits in both dead-letter queues\n  labpipe redrive --queue preprocess             # move the preprocess dead-letter messages back\n  labpipe redrive --where 'session = \"20210301_161221\"' --json   # also re-run that FAILED session\n\n\
A message lands in a dead-letter queue after repeated transient failures. For a preprocess message the session\n\
stays CATALOGED and `labpipe status` shows it STUCK; for an ingest message the session is usually not in the\n\
catalog yet. Fix the cause first (see the session's last error and the function's logs), then\n\
redrive: each message is copied to its source queue and only then deleted from the dead-letter queue, and the\n\
report names the session of each. With --where, the FAILED sessions the filter selects are re-run too: one that\n\
failed ingest gets its manifest's event again (ingest re-checks every object), one that failed preprocessing a\n\
request at the version that failed. A cause that is not fixed fails the session again with the same reason.\n\
Queues come from $LABPIPE_{INGEST,PREPROCESS}[_DEAD_LETTER]_QUEUE_URL, else the stack outputs file. Needs an\n\
operator's credentials (receive and delete on the dead-letter queues, send on the pipeline queues).\n\n\
Exit codes: 0 = done (possibly nothing to move), 1 = a queue or the catalog cannot be used, 2 = invalid filter or flags."
    )]
    Redrive(RedriveArgs),
    /// Tools for demos and development (sample data)
    #[command(subcommand)]
    Dev(DevCommand),
    /// Operate a lab's AWS deployment (deploy or update the stack)
    #[command(subcommand)]
    Admin(crate::commands::admin::AdminCommand),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    #[command(
        after_help = "Examples:\n  labpipe completions bash > /etc/bash_completion.d/labpipe\n  labpipe completions zsh > \"${fpath[1]}/_labpipe\"\n  labpipe completions powershell >> $PROFILE"
    )]
    Completions(CompletionsArgs),
    /// Write man pages (labpipe.1 and one per subcommand) into a folder
    #[command(
        after_help = "Example:\n  labpipe man --out /usr/local/share/man/man1 && man labpipe"
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Folder to write the pages into (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SchemaArg {
    /// Lab schema (labpipe.toml) with metadata fields and check settings
    #[arg(long, value_name = "FILE", env = "LABPIPE_SCHEMA")]
    pub schema: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Session folders, or folders that hold session folders
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print one JSON array of {session, path, verdict, findings} instead of a table
    #[arg(long)]
    pub json: bool,
    /// Seconds a folder must stay unchanged before it counts as complete (default from the schema: 60)
    #[arg(long, value_name = "SECS")]
    pub quiet_period: Option<u64>,
    /// This lab PC's rig id, as for `labpipe upload --rig`: a folder named YYYYMMDD_HHMMSS is checked as session YYYYMMDD_HHMMSS_<rig>, the name it is uploaded under
    #[arg(long, value_name = "RIG", env = "LABPIPE_RIG", value_parser = parse_rig)]
    pub rig: Option<labpipe_core::session_id::Rig>,
    #[command(flatten)]
    pub schema: SchemaArg,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Session folders, or folders that hold session folders
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Bucket for raw recordings
    #[arg(long, value_name = "BUCKET", env = "LABPIPE_RAW_BUCKET")]
    pub bucket: Option<String>,
    /// Parts and small files in flight at once (memory is about concurrency × part size)
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Part size for multipart uploads, e.g. 16MiB (minimum 5MiB); smaller files go in one request
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub part_size: String,
    /// Average upload cap in bytes per second, e.g. 20MB (per second)
    #[arg(long, value_name = "RATE")]
    pub max_bandwidth: Option<String>,
    /// Most sessions uploaded at once (their requests still share --concurrency); more hides each session's round trips behind the others'. Large sessions go one at a time: a session starts only while the running ones hold less than concurrency × part size
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub sessions_in_flight: usize,
    /// Print one JSON event per line and a final summary line instead of progress bars
    #[arg(long)]
    pub json: bool,
    /// Check and show what would be uploaded, without contacting S3
    #[arg(long)]
    pub dry_run: bool,
    /// Upload each session as a correction of its earlier upload: a new revision in raw/<session>.r<N>/, which becomes the session's current one (earlier revisions stay, unchanged and readable)
    #[arg(long, requires = "reason")]
    pub revise: bool,
    /// Why the session is corrected (recorded in the manifest and the catalog's history); needs --revise
    #[arg(long, value_name = "TEXT", requires = "revise")]
    pub reason: Option<String>,
    /// This lab PC's rig id (letters, digits, '-'; e.g. rigB): a folder named YYYYMMDD_HHMMSS is uploaded as session YYYYMMDD_HHMMSS_<rig>, so rigs recording in the same second never share a name
    #[arg(long, value_name = "RIG", env = "LABPIPE_RIG", value_parser = parse_rig)]
    pub rig: Option<labpipe_core::session_id::Rig>,
    /// Upload journal (resume state); default in the user's data folder
    #[arg(long, value_name = "FILE", env = "LABPIPE_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// Show the log live on stderr (-vv for debug); it is always written to the log folder
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Seconds one S3 request attempt may take before it is retried as stalled
    #[arg(long, value_name = "SECS", default_value_t = 120, hide = true)]
    pub attempt_timeout: u64,
    #[command(flatten)]
    pub schema: SchemaArg,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Write realistic sample sessions (and optionally one broken example of each failure)
    #[command(
        after_help = "Example:\n  labpipe dev generate --out demo --count 3 --size-mb 20 --broken"
    )]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write the session folders into (created if missing; existing sessions are never overwritten)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of good sessions
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Size of each good session in MB (10^6 bytes); the brief's sessions are 600 MB
    #[arg(long, value_name = "MB", default_value_t = 600.0)]
    pub size_mb: f64,
    /// Seed: the same seed writes the same bytes
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write one broken session per failure the checks catch
    #[arg(long)]
    pub broken: bool,
    /// Recording time of the first good session (later ones follow at a lab's pace); default 20210301_090000
    #[arg(long, value_name = "YYYYMMDD_HHMMSS")]
    pub start: Option<String>,
    /// Print the generated sessions as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Session ids (folder names); none = a summary of recent sessions
    #[arg(value_name = "SESSION")]
    pub sessions: Vec<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
    /// How many recent sessions the summary shows
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

/// Where the deployed stack is (see `config.rs` for the resolution order).
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Catalog table name
    #[arg(long, value_name = "TABLE", env = "LABPIPE_TABLE")]
    pub table: Option<String>,
    /// Bucket of processed outputs (used when a catalog record names none)
    #[arg(long, value_name = "BUCKET", env = "LABPIPE_PROCESSED_BUCKET")]
    pub processed_bucket: Option<String>,
    /// Bucket of raw sessions (used for --raw when a catalog entry has no raw prefix)
    #[arg(long, value_name = "BUCKET", env = "LABPIPE_RAW_BUCKET")]
    pub raw_bucket: Option<String>,
    /// Stack outputs JSON (default: .labpipe/stack/outputs.json here or in a parent folder)
    #[arg(long, value_name = "FILE", env = "LABPIPE_STACK_OUTPUTS")]
    pub stack_outputs: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The filter, e.g. 'fatigue > 5 and hardware_model = X200' (quote it for the shell); empty = all
    #[arg(value_name = "FILTER", default_value = "")]
    pub filter: String,
    /// List the preprocessed files (s3 URI, size, SHA-256) of the matching processed sessions
    #[arg(long)]
    pub files: bool,
    /// Pipeline version of the files (default: each session's latest)
    #[arg(long, value_name = "N")]
    pub pipeline_version: Option<u32>,
    /// Print one JSON array (sessions, or files with --files)
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV with a header row
    #[arg(long)]
    pub csv: bool,
    /// At most N sessions (oldest recording first)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub schema: SchemaArg,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The filter selecting sessions, as in `labpipe query`
    #[arg(
        long = "where",
        value_name = "FILTER",
        required_unless_present = "snapshot"
    )]
    pub filter: Option<String>,
    /// Destination folder (created if missing); nothing is written outside it
    #[arg(long, value_name = "DIR")]
    pub dest: PathBuf,
    /// Pipeline version of the files (default: each session's latest)
    #[arg(long, value_name = "N")]
    pub pipeline_version: Option<u32>,
    /// Only files whose name (or path inside the session, if the pattern has a '/') matches; repeatable. * ** ?
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Also download the raw files of each session (from its manifest), read-only
    #[arg(long)]
    pub raw: bool,
    /// With --raw: this revision of each session's raw files (1 = the first upload) instead of the current one
    #[arg(long, value_name = "N", requires = "raw", conflicts_with = "revision", value_parser = clap::value_parser!(u32).range(1..))]
    pub raw_revision: Option<u32>,
    /// An earlier revision of each corrected session (1 = the first upload) instead of its current one: its processed outputs and, with --raw, its raw files. Every revision's outputs are kept (labpipe status SESSION lists them); they land in DIR/<session>/ like the current one's, so use another --dest to keep both
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub revision: Option<u32>,
    /// Show what would be downloaded; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Re-hash every local file instead of trusting size and modification time
    #[arg(long)]
    pub verify: bool,
    /// Print one JSON event per line and a final summary line instead of a progress bar
    #[arg(long)]
    pub json: bool,
    /// Requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Files larger than this are fetched in ranged parts of this size (resumable per part)
    #[arg(long, value_name = "SIZE", default_value = "8MiB")]
    pub part_size: String,
    /// At most N sessions (oldest recording first)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// After a complete sync, write the exact object versions (key, version id, SHA-256) to FILE
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub save_snapshot: Option<PathBuf>,
    /// Reproduce a saved snapshot: fetch exactly its object versions into --dest (no catalog query)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["filter", "include", "raw", "pipeline_version", "limit", "save_snapshot"])]
    pub snapshot: Option<PathBuf>,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub schema: SchemaArg,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Session folders, or folders that hold session folders
    #[arg(value_name = "FOLDER", required_unless_present = "root")]
    pub folders: Vec<PathBuf>,
    /// The lab's recordings folder (every session folder in it is considered)
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Only recordings older than this: a number and a unit, d (days), w (weeks) or h (hours), e.g. 30d
    #[arg(long, value_name = "AGE", required = true)]
    pub older_than: String,
    /// Check and list what would be deleted and the space it frees; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object {dry_run, folders: [{session, path, action, code, reason, files, bytes}], deleted, kept, bytes_freed}
    #[arg(long)]
    pub json: bool,
    /// The upload journal whose session locks clean takes (sessions uploading on this PC are kept); default as for `labpipe upload`
    #[arg(long, value_name = "FILE", env = "LABPIPE_JOURNAL")]
    pub journal: Option<PathBuf>,
    /// This lab PC's rig id, as for `labpipe upload --rig`: a folder named YYYYMMDD_HHMMSS is the session YYYYMMDD_HHMMSS_<rig> it was uploaded as
    #[arg(long, value_name = "RIG", env = "LABPIPE_RIG", value_parser = parse_rig)]
    pub rig: Option<labpipe_core::session_id::Rig>,
    #[command(flatten)]
    pub stack: StackArgs,
}

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The filter selecting sessions, as in `labpipe query` (e.g. 'date >= 2021-03-01')
    #[arg(long = "where", value_name = "FILTER")]
    pub filter: String,
    /// Pipeline version to process with; outputs go to v<N>/<session>/
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pipeline_version: u32,
    /// Show which sessions would be sent and which left out, send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object {pipeline_version, dry_run, queue, sent, skipped, sessions} instead of a table
    #[arg(long)]
    pub json: bool,
    /// At most N sessions (oldest recording first)
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub schema: SchemaArg,
}

/// A step of the pipeline with a queue of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueName {
    Ingest,
    Preprocess,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Only this step's dead-letter queue and FAILED sessions (default: both)
    #[arg(long, value_enum, value_name = "QUEUE")]
    pub queue: Option<QueueName>,
    /// Also re-run the FAILED sessions this filter selects, e.g. 'session = "20210301_161221"'
    #[arg(long = "where", value_name = "FILTER")]
    pub filter: Option<String>,
    /// List what would be moved and re-run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON object {dry_run, dead_letters, failed, moved, resent} instead of a report
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub schema: SchemaArg,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object {ok, checks: [{name, outcome, detail, fix}]} instead of lines
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub stack: StackArgs,
}

/// `--rig` / `LABPIPE_RIG`: a rig id, or the rule it breaks.
fn parse_rig(text: &str) -> Result<labpipe_core::session_id::Rig, String> {
    labpipe_core::session_id::Rig::parse(text).map_err(|e| e.to_string())
}
