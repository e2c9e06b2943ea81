//! The `lunasip` command: run the proxy, check a script, translate an
//! opensips.cfg, print the version.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lunasip::script::{Source, DEFAULT_SCRIPT};

// jemalloc unless the build asks for another (Cargo.toml's features;
// bench/RESULTS.md compares them): it returns freed pages after a burst.
#[cfg(all(
    feature = "jemalloc",
    not(feature = "mimalloc"),
    not(feature = "system-alloc")
))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
#[cfg(all(feature = "mimalloc", not(feature = "system-alloc")))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod eval;

/// jemalloc's figures as gauges in the `jemalloc` group (the MI's
/// get_statistics, `/metrics`): `allocated` is what the proxy holds,
/// `active`, `resident` and `retained` what the allocator keeps for it.
#[cfg(all(
    feature = "jemalloc-stats",
    not(feature = "mimalloc"),
    not(feature = "system-alloc")
))]
fn register_heap_stats() {
    use tikv_jemalloc_ctl::{epoch, stats};
    type Read = fn() -> tikv_jemalloc_ctl::Result<usize>;
    let gauges: [(&str, Read); 6] = [
        ("allocated", stats::allocated::read),
        ("active", stats::active::read),
        ("resident", stats::resident::read),
        ("mapped", stats::mapped::read),
        ("retained", stats::retained::read),
        ("metadata", stats::metadata::read),
    ];
    for (name, read) in gauges {
        let gauge = move || {
            // The figures are a snapshot taken when the epoch advances.
            let _ = epoch::advance();
            read().map_or(0, |v| v as u64)
        };
        if let Err(e) = lunasip::stats::register_gauge("jemalloc", name, gauge) {
            eprintln!("jemalloc:{name}: {e}");
        }
    }
}
#[cfg(not(all(
    feature = "jemalloc-stats",
    not(feature = "mimalloc"),
    not(feature = "system-alloc")
)))]
fn register_heap_stats() {}

/// Default script path of an installed lunasip.
const DEFAULT_PATH: &str = "/etc/lunasip/lunasip.lua";

#[derive(Parser)]
#[command(
    name = "lunasip",
    about = "A SIP proxy whose routes are Lua scripts",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy (default script: /etc/lunasip/lunasip.lua, else the embedded default).
    Run {
        /// The Lua script with `config` and the routes.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
        /// Overrides config.log_level (error, warn, notice, info, debug).
        #[arg(long = "log-level")]
        log_level: Option<String>,
        /// Listen on proto:ip:port instead of config.listen (repeatable, as OpenSIPS's -l).
        #[arg(short = 'l', long = "listen", value_name = "PROTO:IP:PORT")]
        listen: Vec<String>,
        /// A script option, name=value, read as $argv(name) (repeatable).
        #[arg(short = 'o', long = "option", value_name = "NAME=VALUE")]
        option: Vec<String>,
        #[command(flatten)]
        cfg: CfgArgs,
    },
    /// Load a script and check it; exits non-zero with file:line on error.
    Check {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Also open the databases the script names (dispatcher db_url) and load their rows.
        #[arg(long)]
        connect: bool,
        #[command(flatten)]
        cfg: CfgArgs,
    },
    /// Translate an opensips.cfg (OpenSIPS 1.4-3.x) into a lunasip Lua script.
    Translate {
        /// The opensips.cfg.
        file: PathBuf,
        /// Write the Lua here instead of to stdout.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Print the report as `json` (to stdout with -o, else to stderr) instead of text (stderr).
        #[arg(long, value_name = "FORMAT")]
        report: Option<String>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Print the version.
    Version,
    /// Evaluate pseudo-variables / xlog strings against a SIP message file.
    Eval {
        /// The SIP message (CRLF or LF line ends).
        #[arg(long)]
        message: PathBuf,
        /// Where the message came from ($si, $sp), IP:PORT.
        #[arg(long)]
        source: Option<String>,
        /// Transport it came on ($pr): udp, tcp, tls, ws.
        #[arg(long)]
        proto: Option<String>,
        /// Assign before evaluating: '$var(x)=value' (repeatable).
        #[arg(long = "set")]
        set: Vec<String>,
        /// A script option, name=value, read as $argv(name) (repeatable).
        #[arg(short = 'o', long = "option", value_name = "NAME=VALUE")]
        option: Vec<String>,
        /// Specs or xlog-style strings; one result line each (`<null>` for null).
        #[arg(required = true, allow_hyphen_values = true)]
        specs: Vec<String>,
    },
    /// Database tools (what `opensips-cli -x database …` does for OpenSIPS).
    Db {
        #[command(subcommand)]
        cmd: DbCmd,
    },
    /// Send a management (MI) command to a running lunasip and print the reply.
    Mi {
        /// MI endpoint (HTTP JSON-RPC).
        #[arg(long, default_value = lunasip::mi::client::DEFAULT_URL)]
        url: String,
        /// Use the FIFO transport at this path instead of HTTP.
        #[arg(long)]
        fifo: Option<PathBuf>,
        /// Directory for the reply FIFO (with --fifo; default: the FIFO's directory).
        #[arg(long)]
        reply_dir: Option<PathBuf>,
        /// Bearer token for the HTTP transport (default: read from
        /// --token-file, else mi.token in the runtime directory,
        /// /run/lunasip or $LUNASIP_RUNTIME_DIR).
        #[arg(long)]
        token: Option<String>,
        /// File holding the token (what `config.modules.mi_http.token_file` names).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The command (`lunasip mi which` lists them).
        command: String,
        /// Its arguments: positional, or name=value.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
}

/// How an opensips.cfg is read (includes, m4 templates).
#[derive(clap::Args, Clone, Default)]
struct ReadArgs {
    /// A directory searched for include_file/import_file targets (repeatable).
    #[arg(short = 'I', long = "include-dir")]
    include_dir: Vec<PathBuf>,
    /// An m4 file of macro definitions read before an m4-templated script (repeatable).
    #[arg(long = "m4")]
    m4: Vec<PathBuf>,
    /// Leave the calls of this OpenSIPS module out, as comments, instead of
    /// raising (e.g. `--skip acc` to run without accounting) (repeatable).
    #[arg(long = "skip", value_name = "MODULE")]
    skip: Vec<String>,
}

/// Options of `run`/`check` for an opensips.cfg, translated on load.
#[derive(clap::Args, Clone, Default)]
struct CfgArgs {
    /// Print the Lua an opensips.cfg translates to.
    #[arg(long)]
    print_lua: bool,
    /// Load a translated opensips.cfg even if some calls have no lunasip
    /// counterpart (they raise an error when reached).
    #[arg(long)]
    allow_missing: bool,
    #[command(flatten)]
    read: ReadArgs,
}

impl ReadArgs {
    fn options(&self) -> compat::Options {
        compat::Options {
            include_dirs: self.include_dir.clone(),
            m4_defs: self.m4.clone(),
            skip_modules: self.skip.clone(),
        }
    }
}

#[derive(Subcommand)]
enum DbCmd {
    /// Create OpenSIPS 3.4's `version`, `location`, `subscriber`, `domain`, `uri`,
    /// `dbaliases`, `address`, `usr_preferences`, `acc`, `missed_calls`, `dialog` and `clusterer`
    /// tables (when missing)
    /// and record the table versions, on mysql://, postgres:// or sqlite:///path.
    Init {
        /// The database: mysql://user:pw@host/db, postgres://user@host/db, sqlite:///path/file.db.
        url: String,
        /// The name of the location table (usrloc's table, `save("location")`).
        #[arg(long, default_value = "location")]
        location_table: String,
        /// The name of the subscriber table (auth_db's, `www_authorize(realm, "subscriber")`).
        #[arg(long, default_value = "subscriber")]
        subscriber_table: String,
        /// The name of the dispatcher table (the dispatcher's `table_name`).
        #[arg(long, default_value = "dispatcher")]
        dispatcher_table: String,
        /// The name of the domain table (the domain module's `domain_table`).
        #[arg(long, default_value = "domain")]
        domain_table: String,
        /// The name of the uri table (auth_db's `db_is_to_authorized(table)`).
        #[arg(long, default_value = "uri")]
        uri_table: String,
        /// The name of the aliases table (alias_db's `alias_db_lookup(table)`).
        #[arg(long, default_value = "dbaliases")]
        dbaliases_table: String,
        /// The name of the address table (permissions' `address_table`).
        #[arg(long, default_value = "address")]
        address_table: String,
        /// The name of the preferences table (avpops' `avp_table`).
        #[arg(long, default_value = "usr_preferences")]
        usr_preferences_table: String,
    },
    /// Upgrade tables of an older OpenSIPS release (as the `version` table lists them)
    /// to OpenSIPS 3.4's versions where the step is mechanical; refuse the others
    /// with the reason, leaving them as they are (MySQL/MariaDB, PostgreSQL, SQLite).
    Migrate {
        /// The database URL.
        url: String,
        /// A table whose name is not its kind: `--kind loc_a=location` (repeatable).
        #[arg(long = "kind", value_name = "TABLE=KIND")]
        kinds: Vec<String>,
        /// Print what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add (or replace) a user in the subscriber table with its HA1 columns
    /// (MD5, SHA-256, SHA-512/256; realm = domain), as `opensips-cli user add`.
    AddUser {
        /// The database URL.
        url: String,
        /// user@domain
        user: String,
        password: String,
        #[arg(long, default_value = "subscriber")]
        table: String,
    },
}

fn db_cmd(cmd: DbCmd) -> Result<(), String> {
    use lunasip::db::{self, schema, Ident};
    match cmd {
        DbCmd::Init {
            url,
            location_table,
            subscriber_table,
            dispatcher_table,
            domain_table,
            uri_table,
            dbaliases_table,
            address_table,
            usr_preferences_table,
        } => {
            let pool = db::open(&url).map_err(|e| e.to_string())?;
            for (kind, name) in [
                ("location", location_table),
                ("subscriber", subscriber_table),
                ("dispatcher", dispatcher_table),
                ("domain", domain_table),
                ("uri", uri_table),
                ("dbaliases", dbaliases_table),
                ("address", address_table),
                ("usr_preferences", usr_preferences_table),
                ("acc", "acc".to_string()),
                ("missed_calls", "missed_calls".to_string()),
                ("dialog", "dialog".to_string()),
                ("clusterer", "clusterer".to_string()),
            ] {
                let table = Ident::new(&name).map_err(|e| e.to_string())?;
                for line in schema::init_wait(&pool, kind, &table).map_err(|e| e.to_string())? {
                    println!("{}: {line}", db::redact(&url));
                }
            }
            Ok(())
        }
        DbCmd::Migrate {
            url,
            kinds,
            dry_run,
        } => {
            let kinds = kinds
                .iter()
                .map(|k| {
                    k.split_once('=')
                        .map(|(t, k)| (t.trim().to_string(), k.trim().to_string()))
                        .ok_or_else(|| format!("--kind {k}: expected TABLE=KIND"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let pool = db::open(&url).map_err(|e| e.to_string())?;
            let shown = db::redact(&url);
            let mut refused = 0;
            for o in db::migrate::all_wait(&pool, &kinds, dry_run).map_err(|e| e.to_string())? {
                if matches!(o, db::migrate::Outcome::Refused { .. }) {
                    refused += 1;
                    eprintln!("{shown}: {o}");
                } else {
                    println!("{shown}: {o}{}", if dry_run { " [dry run]" } else { "" });
                }
            }
            match refused {
                0 => Ok(()),
                n => Err(format!("{n} table(s) not migrated (see above)")),
            }
        }
        DbCmd::AddUser {
            url,
            user,
            password,
            table,
        } => {
            let (u, d) = user
                .split_once('@')
                .filter(|(u, d)| !u.is_empty() && !d.is_empty())
                .ok_or_else(|| format!("'{user}' is not user@domain"))?;
            let pool = db::open(&url).map_err(|e| e.to_string())?;
            let table = Ident::new(&table).map_err(|e| e.to_string())?;
            lunasip::modules::auth_db::add_user_wait(&pool, &table, u, d, &password)
                .map_err(|e| e.to_string())?;
            println!("{}: user {u}@{d} written to {table}", db::redact(&url));
            Ok(())
        }
    }
}

fn read(path: &Path) -> Result<Source, String> {
    let code = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Source {
        name: path.display().to_string(),
        code,
    })
}

/// Reads a script; an opensips.cfg (by extension or content) is translated
/// to Lua first, refused when some of it has no lunasip counterpart unless
/// `allow_missing`.
fn read_script(path: &Path, cfg: &CfgArgs) -> Result<Source, String> {
    let src = read(path)?;
    if !compat::is_opensips_cfg(path, &src.code) {
        return Ok(src);
    }
    translate_on_load(src, cfg)
}

fn translate_on_load(src: Source, cfg: &CfgArgs) -> Result<Source, String> {
    let t = compat::translate_str(&src.name, &src.code, &cfg.read.options())
        .map_err(|e| e.to_string())?;
    if cfg.print_lua {
        print!("{}", t.lua);
    }
    if t.report.raising() > 0 && !cfg.allow_missing {
        return Err(format!(
            "{}: {} call(s) or construct(s) have no lunasip counterpart (--allow-missing loads it anyway; they raise when reached):\n{}",
            src.name,
            t.report.raising(),
            t.report.text().trim_end()
        ));
    }
    // Modules, parameters and globals left out are said, not fatal.
    for u in &t.report.unsupported {
        eprintln!(
            "{}:{}: warning: {} {} not translated: {}",
            u.file,
            u.line,
            u.kind.name(),
            u.name,
            u.reason
        );
    }
    Ok(Source {
        name: src.name,
        code: t.lua,
    })
}

fn translate(
    file: &Path,
    output: Option<&Path>,
    report: Option<&str>,
    read: &ReadArgs,
) -> Result<(), String> {
    let t = compat::translate_file(file, &read.options()).map_err(|e| e.to_string())?;
    match output {
        Some(o) => std::fs::write(o, &t.lua).map_err(|e| format!("{}: {e}", o.display()))?,
        None => print!("{}", t.lua),
    }
    match report {
        Some("json") => {
            let j = serde_json::to_string_pretty(&t.report.to_json()).unwrap_or_default();
            if output.is_some() {
                println!("{j}");
            } else {
                eprintln!("{j}");
            }
        }
        Some(other) if other != "text" => return Err(format!("--report {other}: json or text")),
        _ => eprint!("{}", t.report.text()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    register_heap_stats();
    let result = match cli.cmd {
        Cmd::Mi {
            url,
            fifo,
            reply_dir,
            token,
            token_file,
            command,
            args,
        } => {
            let token = token.or_else(|| lunasip::mi::token::read(token_file.as_deref()));
            use lunasip::mi::client::{run, Transport};
            let dir = reply_dir.or_else(|| {
                let parent = fifo.as_deref()?.parent()?;
                Some(if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_path_buf()
                })
            });
            let t = match (&fifo, &dir) {
                (Some(path), Some(reply_dir)) => Transport::Fifo { path, reply_dir },
                _ => Transport::Http {
                    url: &url,
                    token: token.as_deref(),
                },
            };
            run(t, &command, &args)
        }
        Cmd::Eval {
            message,
            source,
            proto,
            set,
            option,
            specs,
        } => lunasip::pv::misc::set_argv(&option)
            .and_then(|()| eval::run(&message, source.as_deref(), proto.as_deref(), &set, &specs)),
        Cmd::Db { cmd } => db_cmd(cmd),
        Cmd::Version => {
            println!("lunasip {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Cmd::Translate {
            file,
            output,
            report,
            read,
        } => translate(&file, output.as_deref(), report.as_deref(), &read),
        Cmd::Check {
            config,
            connect,
            cfg,
        } => read_script(&config, &cfg).and_then(|src| {
            let checked = lunasip::script::check::check(&src).map_err(|e| e.to_string())?;
            // List files (and databases with --connect) are read, nothing
            // is installed; skipped rows are printed as warnings.
            let lines = checked.verify(connect);
            for msg in lunasip::modules::dispatcher::take_early_log() {
                eprintln!("{}: warning: {msg}", src.name);
            }
            for l in lines.map_err(|e| e.to_string())? {
                println!("{}: {l}", src.name);
            }
            println!("{}: ok", src.name);
            Ok(())
        }),
        Cmd::Run {
            config,
            log_level,
            listen,
            option,
            cfg,
        } => {
            if let Err(e) = lunasip::pv::misc::set_argv(&option) {
                eprintln!("lunasip: {e}");
                return ExitCode::FAILURE;
            }
            let is_cfg = config.as_deref().is_some_and(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| compat::is_opensips_cfg(p, &t))
            });
            let (src, from_default) = match config {
                Some(p) => (read_script(&p, &cfg), false),
                None if Path::new(DEFAULT_PATH).exists() => (read(Path::new(DEFAULT_PATH)), false),
                None => (
                    Ok(Source {
                        name: "default.lua".into(),
                        code: DEFAULT_SCRIPT.into(),
                    }),
                    true,
                ),
            };
            // A reload translates an opensips.cfg again, with the same options.
            let reader: Option<lunasip::runtime::Reader> = if is_cfg {
                let cfg = CfgArgs {
                    print_lua: false,
                    ..cfg.clone()
                };
                Some(std::sync::Arc::new(move |name: &str| {
                    let src = read(Path::new(name))?;
                    translate_on_load(src, &cfg).map(|s| s.code)
                }))
            } else {
                None
            };
            src.and_then(|s| {
                lunasip::runtime::run_with(s, log_level.as_deref(), from_default, &listen, reader)
                    .map_err(|e| e.to_string())
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lunasip: {e}");
            ExitCode::FAILURE
        }
    }
}
