//! `outpost-server`: the central registry server and its administration commands.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use outpost_proto::BeneficiaryStatus;
use outpost_server::{
    Error, Result,
    app::AppState,
    demo,
    devices::store::{self as devices, ProgrammeKey},
    payroll::store as payroll,
    plans::store as plans,
    registry::{
        import::{FileFormat, parse_individuals},
        store::{self as registry, ImportOptions, Scope},
    },
    server,
    store::Store,
    store::audit,
    users::store::{self as users, NewUser, Role, clients},
};

/// mimalloc: uploads allocate many small objects on many threads, where glibc's allocator
/// spent a quarter of the time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "outpost-server",
    version,
    about = "Outpost central registry and sync server"
)]
struct Cli {
    /// Where the server keeps its database.
    #[arg(long, global = true, env = "OUTPOST_DATA", default_value = "data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (and, with --demo, load the demo programme on first start, or open this
    /// month's cycle in a demo loaded in an earlier month).
    Serve {
        #[arg(long, env = "OUTPOST_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Load the demo programme if the database is empty; in a demo database, open this
        /// month's cycle if it has none yet.
        #[arg(long)]
        demo: bool,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. Without it the
        /// server speaks plain HTTP, for a TLS-terminating proxy in front.
        #[arg(long, env = "OUTPOST_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, env = "OUTPOST_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Load the demo programme (deterministic for a given seed and day) into an empty database.
    Demo {
        #[arg(long, default_value_t = 200)]
        households: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The day the demo is generated as of (YYYY-MM-DD, today by default): its
        /// cycle is that day's calendar month.
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
    },
    /// Import a registry file.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Define a benefit plan from a JSON file (see README for the format).
    Plan { file: PathBuf },
    /// Open a payment cycle.
    Cycle {
        code: String,
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    },
    /// Generate a plan's payrolls for a cycle (safe to re-run: only adds what is new).
    Generate {
        #[arg(long)]
        plan: String,
        #[arg(long)]
        cycle: String,
    },
    /// Add a staff account; the password is read from standard input.
    User {
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Location code of the user's area; national if omitted.
        #[arg(long)]
        area: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// API clients for integrations: create (the secret is printed once), list, revoke.
    Client {
        #[command(subcommand)]
        what: ClientWhat,
    },
    /// Reset a staff account's password (read from standard input) and/or its authenticator
    /// app; every API token and web session of the account ends.
    ResetLogin {
        username: String,
        /// Set a new password, read from standard input.
        #[arg(long)]
        password: bool,
        /// Forget the authenticator app: the next web log-in enrols a new one.
        #[arg(long)]
        totp: bool,
    },
    /// Check that the audit log's hash chain is intact.
    AuditVerify,
    /// Find people registered more than once (no national ID needed) and keep the likely
    /// duplicates for review; pairs already decided are not proposed again.
    Dedup {
        /// Only the people this plan enrols (directly or through their household).
        #[arg(long)]
        plan: Option<String>,
        /// Write every likely duplicate (both people, the score, the evidence per field) and
        /// the model used, as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// The match probability from which a pair is proposed.
        #[arg(long, default_value_t = outpost_server::dedup::matching::DEFAULT_THRESHOLD)]
        threshold: f64,
        /// A model (as the JSON output's "model") to score with instead of estimating one.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Print the current TOTP code for a base32 secret (by default the demo staff's published
    /// one), for trying the demo without an authenticator app. Reads no database.
    TotpCode {
        #[arg(long, default_value = outpost_server::users::store::sessions::DEMO_TOTP_SECRET)]
        secret: String,
        /// The code of the 30-second step holding this Unix time instead of now (for scripts
        /// and tests that need a code the server has not seen yet).
        #[arg(long)]
        at: Option<i64>,
    },
    /// Create a one-time enrolment code for a field agent's device.
    EnrolCode {
        /// The field agent's username.
        #[arg(long)]
        agent: String,
        /// Location code of the device's assignment (inside the agent's area).
        #[arg(long)]
        assignment: String,
        #[arg(long)]
        ttl_minutes: Option<i64>,
    },
    /// List enrolled devices.
    Devices,
    /// Revoke a device: its next sync is refused and told to wipe local data.
    Revoke {
        device: uuid::Uuid,
        #[arg(long)]
        reason: String,
    },
    /// Print a plan's beneficiary cards for an area as a PDF, issuing missing cards.
    Cards {
        #[arg(long)]
        plan: String,
        /// Location code.
        #[arg(long)]
        area: String,
        #[arg(long)]
        out: PathBuf,
        /// Print only cards already issued.
        #[arg(long)]
        no_issue: bool,
    },
}

#[derive(Subcommand)]
enum ClientWhat {
    /// Create a client; prints it with its secret, which is shown only this once.
    Create {
        name: String,
        /// admin or supervisor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// read, registry, devices or accounts; repeat for several.
        #[arg(long = "permission", required = true, value_parser = parse_permission)]
        permissions: Vec<clients::Permission>,
        /// Location code of the client's area; national if omitted.
        #[arg(long)]
        area: Option<String>,
        /// When it stops working (RFC 3339, e.g. 2027-06-30T00:00:00Z).
        #[arg(long)]
        expires_at: chrono::DateTime<chrono::FixedOffset>,
        /// Username of the administrator the client answers to: what the client makes counts
        /// as theirs for four eyes, and the client stops when their account is disabled.
        #[arg(long)]
        owner: String,
    },
    /// List every client with its state.
    List,
    /// Revoke a client: its next request is refused.
    Revoke {
        id: uuid::Uuid,
        #[arg(long)]
        reason: String,
    },
}

fn parse_permission(s: &str) -> std::result::Result<clients::Permission, String> {
    serde_json::from_value(serde_json::Value::String(s.to_lowercase()))
        .map_err(|_| format!("'{s}' is not a permission: read, registry, devices or accounts"))
}

#[derive(Subcommand)]
enum ImportWhat {
    /// An openIMIS individual upload (CSV or XLSX).
    Individuals {
        file: PathBuf,
        /// Enrol the people (or households) in this plan; its schema checks extra columns.
        #[arg(long)]
        plan: Option<String>,
        /// Status of new beneficiaries (default POTENTIAL).
        #[arg(long)]
        status: Option<BeneficiaryStatus>,
        /// Import the valid rows and write the rejected ones to --rejects.
        #[arg(long, requires = "rejects")]
        partial: bool,
        #[arg(long)]
        rejects: Option<PathBuf>,
    },
    /// Locations as CSV: code,name,level,parent_code (parents first).
    Locations { file: PathBuf },
}

fn parse_role(s: &str) -> std::result::Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(
        s.to_uppercase().replace('-', "_"),
    ))
    .map_err(|_| format!("'{s}' is not a role: admin, supervisor or field_agent"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "outpost_server=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Error::ImportRejected { errors } = &e {
                for r in errors {
                    eprintln!(
                        "  row {}{}: {}",
                        r.row,
                        r.column
                            .as_deref()
                            .map(|c| format!(", {c}"))
                            .unwrap_or_default(),
                        r.reason
                    );
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn open(data: &Path) -> Result<Store> {
    Store::open(&data.join("registry.db"))
}

fn run(cli: Cli) -> Result<()> {
    let actor = audit::actor_cli();
    match cli.command {
        Command::Serve {
            listen,
            demo: with_demo,
            tls_cert,
            tls_key,
        } => {
            let store = open(&cli.data)?;
            if with_demo && demo::is_empty(&store)? {
                eprintln!("loading the demo programme (first start)...");
                demo::load(&store, &demo::DemoOptions::default())?;
            } else if with_demo {
                // Best effort: a demo whose policies or staff were changed may not take a new
                // cycle the way it was made; the server serves it as it is.
                match demo::bring_current(&store, demo::today()) {
                    Ok(Some(cycle)) => {
                        eprintln!(
                            "the demo programme's cycle {cycle} opened: payments are due today"
                        )
                    }
                    Ok(None) => {}
                    Err(e) => eprintln!("warning: could not open this month's demo cycle: {e}"),
                }
            }
            let state = AppState::new(store, ProgrammeKey::load_or_create(&cli.data)?);
            serve(state, listen, tls_cert.zip(tls_key))
        }
        Command::EnrolCode {
            agent,
            assignment,
            ttl_minutes,
        } => {
            let store = open(&cli.data)?;
            let enrolment = store.write(|tx| {
                devices::create_enrolment(
                    tx,
                    &actor,
                    &Scope::National,
                    &agent,
                    &assignment,
                    ttl_minutes,
                )
            })?;
            println!("{}", serde_json::to_string_pretty(&enrolment)?);
            Ok(())
        }
        Command::Devices => {
            let store = open(&cli.data)?;
            let list = store.read(|c| devices::list_devices(c, &Scope::National))?;
            println!("{}", serde_json::to_string_pretty(&list)?);
            Ok(())
        }
        Command::Revoke { device, reason } => {
            let store = open(&cli.data)?;
            store.write(|tx| {
                devices::revoke_device(tx, &actor, &Scope::National, device, &reason)
            })?;
            println!("device {device} revoked");
            Ok(())
        }
        Command::Cards {
            plan,
            area,
            out,
            no_issue,
        } => {
            let store = open(&cli.data)?;
            let key = ProgrammeKey::load_or_create(&cli.data)?;
            let cards = store.write(|tx| {
                devices::cards_for_area(tx, &key, &actor, &Scope::National, &plan, &area, !no_issue)
            })?;
            std::fs::write(
                &out,
                outpost_server::devices::http::render_sheet(&format!("{plan} - {area}"), &cards)?,
            )?;
            println!("{} card(s) written to {}", cards.len(), out.display());
            Ok(())
        }
        Command::TotpCode { secret, at } => {
            let at = at.unwrap_or_else(|| chrono::Utc::now().timestamp());
            println!(
                "{}",
                outpost_server::users::store::sessions::code_at(&secret, at)?
            );
            Ok(())
        }
        Command::Demo {
            households,
            seed,
            as_of,
        } => {
            let store = open(&cli.data)?;
            if !demo::is_empty(&store)? {
                return Err(Error::Invalid(format!(
                    "{} already holds data; the demo loads into an empty database",
                    cli.data.display()
                )));
            }
            let summary = demo::load(
                &store,
                &demo::DemoOptions {
                    households,
                    seed,
                    as_of: as_of.unwrap_or_else(demo::today),
                },
            )?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Import {
            what:
                ImportWhat::Individuals {
                    file,
                    plan,
                    status,
                    partial,
                    rejects,
                },
        } => {
            let store = open(&cli.data)?;
            let bytes = std::fs::read(&file)?;
            let (report, rejected_csv) = store.write(|tx| {
                let schema = match &plan {
                    Some(code) => Some(plans::plan_by_code(tx, code)?.extra_schema),
                    None => None,
                };
                let parsed = parse_individuals(&bytes, FileFormat::sniff(&bytes), schema.as_ref())?;
                let opts = ImportOptions {
                    plan: plan.clone(),
                    status,
                    partial,
                };
                let report = registry::apply_import(tx, &actor, &Scope::National, &parsed, &opts)?;
                let csv = parsed.rejected_csv(&report.rejected);
                Ok((report, csv))
            })?;
            if let (Some(path), false) = (&rejects, report.rejected.is_empty()) {
                std::fs::write(path, rejected_csv)?;
                eprintln!(
                    "{} rejected row(s) written to {}",
                    report.rejected.len(),
                    path.display()
                );
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Import {
            what: ImportWhat::Locations { file },
        } => {
            let store = open(&cli.data)?;
            let bytes = std::fs::read(&file)?;
            let n = store
                .write(|tx| registry::import_locations(tx, &actor, &Scope::National, &bytes))?;
            println!("{n} location(s) added");
            Ok(())
        }
        Command::Plan { file } => {
            let store = open(&cli.data)?;
            let new: plans::NewPlan = serde_json::from_slice(&std::fs::read(&file)?)
                .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
            let plan = store.write(|tx| plans::create_plan(tx, &actor, &new))?;
            println!("{}", serde_json::to_string_pretty(&plan)?);
            Ok(())
        }
        Command::Cycle { code, start, end } => {
            let store = open(&cli.data)?;
            let cycle = plans::Cycle {
                code,
                start_date: start,
                end_date: end,
            };
            store.write(|tx| plans::create_cycle(tx, &actor, &cycle))?;
            println!("cycle {} opened", cycle.code);
            Ok(())
        }
        Command::Generate { plan, cycle } => {
            let store = open(&cli.data)?;
            let report =
                store.write(|tx| payroll::generate(tx, &actor, &Scope::National, &plan, &cycle))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::User {
            username,
            role,
            area,
            name,
        } => {
            let store = open(&cli.data)?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let new = NewUser {
                display_name: name.unwrap_or_else(|| username.clone()),
                username,
                role,
                area,
                password: password.trim_end_matches(['\r', '\n']).to_owned(),
            };
            let user = store.write(|tx| users::create_user(tx, &actor, &Scope::National, &new))?;
            println!("user {} created", user.username);
            Ok(())
        }
        Command::Client { what } => {
            let store = open(&cli.data)?;
            match what {
                ClientWhat::Create {
                    name,
                    role,
                    permissions,
                    area,
                    expires_at,
                    owner,
                } => {
                    let new = clients::NewClient {
                        name,
                        role,
                        permissions,
                        area,
                        expires_at,
                    };
                    let created = store.write(|tx| {
                        clients::create_client(
                            tx,
                            &actor,
                            &Scope::National,
                            None,
                            Some(&owner),
                            &new,
                        )
                    })?;
                    println!("{}", serde_json::to_string_pretty(&created)?);
                }
                ClientWhat::List => {
                    let list = store.read(|c| clients::list_clients(c, &Scope::National))?;
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                ClientWhat::Revoke { id, reason } => {
                    let client = store.write(|tx| {
                        clients::revoke_client(tx, &actor, &Scope::National, id, &reason)
                    })?;
                    println!("client {} revoked", client.name);
                }
            }
            Ok(())
        }
        Command::ResetLogin {
            username,
            password,
            totp,
        } => {
            // Resetting an authenticator is the way back from a lost key file, so that reset
            // opens the database even when its sealed secrets cannot be opened.
            let store = if totp {
                Store::open_to_reset_logins(&cli.data.join("registry.db"))?
            } else {
                open(&cli.data)?
            };
            let password = if password {
                let mut p = String::new();
                std::io::stdin().read_to_string(&mut p)?;
                Some(p.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let reset = users::Reset { password, totp };
            let hash = reset.prepare()?;
            let user = store.write(|tx| {
                users::reset_login(
                    tx,
                    &actor,
                    &Scope::National,
                    &username,
                    &reset,
                    hash.as_deref(),
                )
            })?;
            println!(
                "{}: log-in reset; its tokens and sessions have ended",
                user.username
            );
            Ok(())
        }
        Command::Dedup {
            plan,
            json,
            threshold,
            model,
        } => {
            use outpost_server::dedup::{self, matching::Model, store as candidates};
            if !(threshold > 0.0 && threshold <= 1.0) {
                return Err(Error::Invalid(format!(
                    "--threshold {threshold} is not a probability within (0, 1]"
                )));
            }
            let model = match model {
                Some(path) => {
                    let model: Model =
                        serde_json::from_slice(&std::fs::read(&path)?).map_err(|e| {
                            Error::Invalid(format!(
                                "{} is not a matching model: {e}",
                                path.display()
                            ))
                        })?;
                    model.check().map_err(|e| Error::Invalid(e.to_string()))?;
                    Some(model)
                }
                None => None,
            };
            let store = open(&cli.data)?;
            let registry = store.read(|tx| candidates::people(tx, plan.as_deref()))?;
            let run = dedup::run(&registry.people, model, threshold);
            let recorded = store
                .write(|tx| candidates::record(tx, &actor, &registry, &run, plan.as_deref()))?;
            println!(
                "{} people, {} pairs compared: {} likely duplicate(s), {} new, {} reopened, {} still open, {} decided before (not proposed again); {} open pair(s) no longer found, withdrawn",
                registry.people.len(),
                run.compared,
                run.matches.len(),
                recorded.new,
                recorded.reopened,
                recorded.refreshed,
                recorded.decided,
                recorded.withdrawn
            );
            if let Some(path) = json {
                let mut pairs = Vec::new();
                for m in &run.matches {
                    let (a, b) = (registry.ids[m.first], registry.ids[m.second]);
                    let status = store.read(|tx| candidates::status(tx, a, b))?;
                    if status.as_deref() != Some("OPEN") {
                        continue;
                    }
                    let person = |i: usize| {
                        let p = &registry.people[i];
                        serde_json::json!({
                            "id": registry.ids[i], "external_id": p.external_id,
                            "given_name": p.given_name, "family_name": p.family_name,
                            "dob": p.dob, "village": p.village, "household": p.household,
                        })
                    };
                    pairs.push(serde_json::json!({
                        "first": person(m.first), "second": person(m.second),
                        "probability": m.probability, "weight": m.weight, "evidence": m.evidence,
                    }));
                }
                let out = serde_json::json!({
                    "plan": plan, "people": registry.people.len(), "compared": run.compared,
                    "skipped_blocks": run.skipped_blocks, "threshold": threshold,
                    // What every pair's weight starts from: the evidence adds to this.
                    "prior_bits": (run.model.prior / (1.0 - run.model.prior)).log2(),
                    "recorded": recorded, "candidates": pairs, "model": run.model,
                });
                std::fs::write(&path, serde_json::to_vec_pretty(&out)?)?;
                println!("candidates written to {}", path.display());
            }
            Ok(())
        }
        Command::AuditVerify => {
            let store = open(&cli.data)?;
            match store.read(audit::verify)? {
                Ok(n) => {
                    println!("audit log intact: {n} entries");
                    Ok(())
                }
                Err(seq) => Err(Error::Invalid(format!(
                    "the audit log was altered: entry {seq} does not match its hash"
                ))),
            }
        }
    }
}

fn serve(state: AppState, listen: SocketAddr, tls: Option<(PathBuf, PathBuf)>) -> Result<()> {
    let tls = match tls {
        Some((cert, key)) => Some(server::tls_config(&cert, &key)?),
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = std::net::TcpListener::bind(listen)?;
        let handle = axum_server::Handle::new();
        let shutdown = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        let url = server::base_url(&listener, tls.is_some())?;
        // Tests and scripts read this line to find the port when listening on :0.
        println!("listening on {url}");
        std::io::stdout().flush()?;
        server::run(state, listener, tls, handle).await
    })
}
