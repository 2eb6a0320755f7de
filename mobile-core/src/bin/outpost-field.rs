//! `outpost-field`: play a field device without a phone. Every command goes through the same
//! API the Android app calls, against a real encrypted database file; output is JSON.
//!
//! The database key, which the Android Keystore holds on a phone, is kept here in a file
//! beside the database (`<db>.key`, created 0600 on first use).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use outpost_core::{Error, Outpost, types::*};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "outpost-field",
    version,
    about = "A field device on the command line"
)]
struct Cli {
    /// The device database file.
    #[arg(
        long,
        global = true,
        env = "OUTPOST_FIELD_DB",
        default_value = "field.db"
    )]
    db: PathBuf,
    /// The file holding the 32-byte database key (default: the database path + `.key`).
    #[arg(long, global = true, env = "OUTPOST_FIELD_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// The agent's PIN, for commands that need the app unlocked.
    #[arg(long, global = true, env = "OUTPOST_FIELD_PIN", hide_env_values = true)]
    pin: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol this device with a supervisor's one-time code; --pin sets the agent's PIN.
    Enrol {
        #[arg(long)]
        server: String,
        #[arg(long)]
        code: String,
        #[arg(long, default_value = "outpost-field")]
        label: String,
        /// A PEM file with the CA of a server whose certificate is not from a public CA.
        #[arg(long)]
        server_ca: Option<PathBuf>,
    },
    /// Check the PIN.
    Unlock,
    /// Enrolment, unlock state and sync status.
    Status,
    /// Upload, download the replica, receive changes; progress goes to standard error.
    Sync,
    /// Find beneficiaries by name, external id, card number, card QR text or id.
    Search {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// A beneficiary's page.
    Show { id: String },
    /// Entitlements due on a day (today by default).
    Due {
        #[arg(long)]
        day: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Cash received for paying out (or --return to hand it back).
    Cash {
        amount_minor: i64,
        currency: String,
        #[arg(long = "return")]
        give_back: bool,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Goods received to hand out (or --return to hand them back).
    Stock {
        item: String,
        quantity: i64,
        #[arg(long = "return")]
        give_back: bool,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Pay an entitlement. Proof: --card TEXT, --witness-pin, --signature REF or --photo REF.
    Pay {
        #[arg(long)]
        entitlement: String,
        #[arg(long)]
        collector: String,
        #[arg(long)]
        amount: i64,
        #[arg(long)]
        currency: String,
        #[arg(long, group = "proof")]
        card: Option<String>,
        /// The agent's PIN again, witnessing the collector's identity.
        #[arg(long, group = "proof")]
        witness_pin: bool,
        #[arg(long, group = "proof")]
        signature: Option<String>,
        #[arg(long, group = "proof")]
        photo: Option<String>,
        /// Pay an entitlement already paid on this device, for this reason.
        #[arg(long = "override")]
        override_reason: Option<String>,
    },
    /// Void a payout, distribution or timesheet entry.
    Void {
        record: String,
        #[arg(long)]
        reason: String,
    },
    /// Hand out goods: --item CODE=QTY, repeated.
    Distribute {
        #[arg(long)]
        entitlement: String,
        #[arg(long)]
        collector: String,
        #[arg(long = "item", value_parser = item_quantity, required = true)]
        items: Vec<ItemQuantity>,
    },
    /// Record a worker's day on a cash-for-work project.
    Timesheet {
        #[arg(long)]
        project: String,
        /// The worker's beneficiary id.
        #[arg(long)]
        worker: String,
        #[arg(long)]
        date: String,
        /// Hundredths of a day (100 = a full day).
        #[arg(long, default_value_t = 100)]
        days: i64,
    },
    /// A plan's verification questions for a beneficiary.
    Questions { beneficiary: String },
    /// Record an eligibility verification: --answer NAME=VALUE, repeated.
    Verify {
        #[arg(long)]
        beneficiary: String,
        #[arg(long = "answer", value_parser = answer)]
        answers: Vec<Answer>,
        #[arg(long)]
        propose: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Grievances: new, comment, status, list, show.
    Grievance {
        #[command(subcommand)]
        what: GrievanceCommand,
    },
    /// A beneficiary's new phone number or address.
    Contact {
        #[arg(long)]
        beneficiary: String,
        #[arg(long)]
        person: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        address: Option<String>,
    },
    /// The day's summary: paid, handed out, cash and stock in hand.
    Summary {
        #[arg(long)]
        day: Option<String>,
    },
    /// This device's records (--pending: only those not yet confirmed or refused).
    Records {
        #[arg(long)]
        pending: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Projects, goods items and grievance categories on this device.
    Lists,
}

#[derive(Subcommand)]
enum GrievanceCommand {
    New {
        #[arg(long)]
        beneficiary: Option<String>,
        #[arg(long)]
        category: String,
        #[arg(long)]
        description: String,
    },
    Comment {
        id: String,
        text: String,
    },
    Status {
        id: String,
        status: String,
        #[arg(long)]
        assignee: Option<String>,
    },
    List,
    Show {
        id: String,
    },
}

fn item_quantity(s: &str) -> Result<ItemQuantity, String> {
    let (code, qty) = s.split_once('=').ok_or("use CODE=QUANTITY")?;
    Ok(ItemQuantity {
        item_code: code.trim().to_owned(),
        quantity: qty
            .trim()
            .parse()
            .map_err(|_| format!("`{qty}` is not a whole number"))?,
    })
}

fn answer(s: &str) -> Result<Answer, String> {
    let (q, a) = s.split_once('=').ok_or("use QUESTION=ANSWER")?;
    Ok(Answer {
        question: q.trim().to_owned(),
        answer: a.trim().to_owned(),
    })
}

/// The key file: read, or created with a fresh random key when neither it nor the database
/// exists yet (never replaced: a new key would make the database unreadable).
fn database_key(db: &Path, key_file: &Path) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Storage {
        reason: format!("{}: {e}", key_file.display()),
    };
    match std::fs::read_to_string(key_file) {
        Ok(hex) => {
            let hex = hex.trim();
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| Error::Invalid {
                    reason: format!("{} does not hold a hex key", key_file.display()),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !db.exists() => {
            let mut key = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).map_err(
                |_| Error::Internal {
                    reason: "no randomness for the key".into(),
                },
            )?;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(key_file)
                .and_then(|mut f| f.write_all(hex.as_bytes()))
                .map_err(io)?;
            Ok(key.to_vec())
        }
        Err(e) => Err(io(e)),
    }
}

struct Progress;

impl SyncListener for Progress {
    fn on_progress(&self, p: SyncProgressInfo) {
        let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
        eprintln!(
            "{:?}: {}{total} ({} bytes sent, {} received)",
            p.phase, p.items, p.bytes_sent, p.bytes_received
        );
    }
}

fn print(value: &impl Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Internal {
        reason: e.to_string(),
    })?;
    println!("{text}");
    Ok(())
}

fn pin(cli_pin: &Option<String>) -> Result<String, Error> {
    cli_pin.clone().ok_or(Error::Invalid {
        reason: "give the agent's PIN with --pin or OUTPOST_FIELD_PIN".into(),
    })
}

fn run(cli: Cli) -> Result<(), Error> {
    let key_file = cli.key_file.clone().unwrap_or_else(|| {
        let mut p = cli.db.clone().into_os_string();
        p.push(".key");
        PathBuf::from(p)
    });
    let key = database_key(&cli.db, &key_file)?;
    let device: Arc<Outpost> = Outpost::open(cli.db.to_string_lossy().into_owned(), key)?;
    let unlock = || device.unlock(pin(&cli.pin)?);
    match cli.command {
        Command::Enrol {
            server,
            code,
            label,
            server_ca,
        } => {
            let ca = match server_ca {
                Some(p) => Some(std::fs::read_to_string(&p).map_err(|e| Error::Invalid {
                    reason: format!("{}: {e}", p.display()),
                })?),
                None => None,
            };
            print(&device.enrol(server, code, pin(&cli.pin)?, label, ca)?)
        }
        Command::Unlock => {
            unlock()?;
            print(&device.status()?)
        }
        Command::Status => print(&device.status()?),
        Command::Sync => print(&device.sync(Some(Box::new(Progress)))?),
        Command::Search { query, limit } => {
            unlock()?;
            print(&device.search(query, limit)?)
        }
        Command::Show { id: b } => {
            unlock()?;
            print(&device.beneficiary(b)?)
        }
        Command::Due { day, limit } => {
            unlock()?;
            print(&device.due(day, limit)?)
        }
        Command::Cash {
            amount_minor,
            currency,
            give_back,
            note,
        } => {
            unlock()?;
            device.record_cash(!give_back, amount_minor, currency, note)?;
            print(&device.day_summary(None)?.float)
        }
        Command::Stock {
            item,
            quantity,
            give_back,
            note,
        } => {
            unlock()?;
            device.record_stock(!give_back, item, quantity, note)?;
            print(&device.day_summary(None)?.stock)
        }
        Command::Pay {
            entitlement,
            collector,
            amount,
            currency,
            card,
            witness_pin,
            signature,
            photo,
            override_reason,
        } => {
            unlock()?;
            let proof = match (card, witness_pin, signature, photo) {
                (Some(text), ..) => ProofInput::Card { text },
                (_, true, ..) => ProofInput::AgentPin {
                    pin: pin(&cli.pin)?,
                },
                (_, _, Some(reference), _) => ProofInput::Signature { reference },
                (.., Some(reference)) => ProofInput::Photo { reference },
                _ => {
                    return Err(Error::Invalid {
                        reason: "give a proof: --card, --witness-pin, --signature or --photo"
                            .into(),
                    });
                }
            };
            let record = device.pay(PayoutInput {
                entitlement_id: entitlement,
                collector_id: collector,
                amount_minor: amount,
                currency,
                proof,
                override_reason,
            })?;
            print(&serde_json::json!({ "record": record }))
        }
        Command::Void { record, reason } => {
            unlock()?;
            device.void_record(record.clone(), reason)?;
            print(&serde_json::json!({ "voided": record }))
        }
        Command::Distribute {
            entitlement,
            collector,
            items,
        } => {
            unlock()?;
            let record = device.distribute(DistributionInput {
                entitlement_id: entitlement,
                collector_id: collector,
                items,
            })?;
            print(&serde_json::json!({ "record": record }))
        }
        Command::Timesheet {
            project,
            worker,
            date,
            days,
        } => {
            unlock()?;
            let record = device.record_timesheet(TimesheetInput {
                project_id: project,
                worker_id: worker,
                work_date: date,
                day_hundredths: days,
            })?;
            print(&serde_json::json!({ "record": record }))
        }
        Command::Questions { beneficiary } => {
            unlock()?;
            print(&device.questions(beneficiary)?)
        }
        Command::Verify {
            beneficiary,
            answers,
            propose,
            note,
        } => {
            unlock()?;
            let record = device.verify(VerificationInput {
                beneficiary_id: beneficiary,
                answers,
                proposed_status: propose,
                note,
            })?;
            print(&serde_json::json!({ "record": record }))
        }
        Command::Grievance { what } => {
            unlock()?;
            match what {
                GrievanceCommand::New {
                    beneficiary,
                    category,
                    description,
                } => {
                    let record = device.create_grievance(GrievanceInput {
                        beneficiary_id: beneficiary,
                        category,
                        description,
                    })?;
                    print(&device.grievance(record)?)
                }
                GrievanceCommand::Comment { id, text } => {
                    device.comment_grievance(id.clone(), text)?;
                    print(&device.grievance(id)?)
                }
                GrievanceCommand::Status {
                    id,
                    status,
                    assignee,
                } => {
                    device.set_grievance_status(id.clone(), status, assignee)?;
                    print(&device.grievance(id)?)
                }
                GrievanceCommand::List => print(&device.grievances()?),
                GrievanceCommand::Show { id } => print(&device.grievance(id)?),
            }
        }
        Command::Contact {
            beneficiary,
            person,
            phone,
            address,
        } => {
            unlock()?;
            let record = device.update_contact(ContactInput {
                beneficiary_id: beneficiary,
                individual_id: person,
                phone,
                address,
            })?;
            print(&serde_json::json!({ "record": record }))
        }
        Command::Summary { day } => {
            unlock()?;
            print(&device.day_summary(day)?)
        }
        Command::Records { pending, limit } => {
            unlock()?;
            print(&device.records(pending, limit)?)
        }
        Command::Lists => {
            unlock()?;
            print(&serde_json::json!({
                "projects": device.projects()?,
                "goods_items": device.goods_items()?,
                "grievance_categories": device.grievance_categories()?,
            }))
        }
    }
}

/// Exit codes: 0 done, 1 refused by a rule or bad input, 2 network or server, 3 storage.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let kind = format!("{e:?}");
            let kind = kind.split([' ', '{', '(']).next().unwrap_or("Error");
            let _ = print(&serde_json::json!({ "error": kind, "message": e.to_string() }));
            eprintln!("outpost-field: {e}");
            ExitCode::from(match e {
                Error::Network { .. } | Error::ServerRefused { .. } | Error::Revoked { .. } => 2,
                Error::Storage { .. }
                | Error::StorageFull
                | Error::WrongDatabaseKey
                | Error::Internal { .. } => 3,
                _ => 1,
            })
        }
    }
}
