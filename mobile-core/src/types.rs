//! The plain records the API takes and returns. Ids are UUID strings, dates ISO 8601 (times
//! with their zone), money integer minor units with a currency code.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, uniffi::Record)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, uniffi::Record)]
pub struct ItemQuantity {
    pub item_code: String,
    pub quantity: i64,
}

/// What the home screen shows before and after unlocking.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct DeviceStatus {
    pub enrolled: bool,
    pub unlocked: bool,
    pub device_id: Option<String>,
    pub agent_username: Option<String>,
    pub agent_name: Option<String>,
    pub assignment_code: Option<String>,
    pub assignment_name: Option<String>,
    pub server_url: Option<String>,
    pub sync: SyncStatus,
}

/// Never "up to date" while anything waits to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, uniffi::Record)]
pub struct SyncStatus {
    /// Records (of any agent enrolled on this phone) the server has not confirmed.
    pub pending: u64,
    /// Records the server keeps in quarantine, with reasons in `records`.
    pub refused: u64,
    pub last_sync_at: Option<String>,
    /// Nothing pending and the replica downloaded at least once.
    pub up_to_date: bool,
}

/// One row of a search result or a list.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct BeneficiarySummary {
    pub id: String,
    /// The beneficiary person, or the household head for a household plan.
    pub name: String,
    pub external_id: String,
    pub plan_code: String,
    pub plan_name: String,
    pub status: String,
    pub household_code: Option<String>,
    pub location_code: String,
    /// What is still due on entitlements held, per currency.
    pub due: Vec<Money>,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub external_id: String,
    pub sex: String,
    pub date_of_birth: Option<String>,
    pub relationship: String,
    pub recipient: String,
    /// May take money or goods for this beneficiary.
    pub may_collect: bool,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct EntitlementView {
    pub id: String,
    pub beneficiary_id: String,
    pub cycle_code: String,
    pub cycle_start: String,
    pub cycle_end: String,
    pub status: String,
    pub amount: Money,
    /// Paid on this phone (or seen from other devices), voided payouts excluded.
    pub paid_minor: i64,
    pub remaining_minor: i64,
    pub goods: Vec<ItemQuantity>,
    pub goods_remaining: Vec<ItemQuantity>,
    /// The person the payroll named to collect, if any.
    pub recipient_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct PayoutView {
    pub record_id: String,
    pub entitlement_id: String,
    pub beneficiary_id: String,
    pub collector_id: String,
    pub collector_name: String,
    pub amount: Money,
    pub proof: String,
    pub paid_at: String,
    pub override_reason: Option<String>,
    pub void_reason: Option<String>,
    /// Made on this phone (not learnt from another device).
    pub own: bool,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct DistributionView {
    pub record_id: String,
    pub entitlement_id: String,
    pub collector_id: String,
    pub items: Vec<ItemQuantity>,
    pub distributed_at: String,
    pub void_reason: Option<String>,
    pub own: bool,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct BeneficiaryDetail {
    pub summary: BeneficiarySummary,
    pub card_serials: Vec<u64>,
    pub members: Vec<Member>,
    pub entitlements: Vec<EntitlementView>,
    pub payouts: Vec<PayoutView>,
    pub distributions: Vec<DistributionView>,
}

/// An entitlement payable today, for the day's list.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct DueEntitlement {
    pub entitlement: EntitlementView,
    pub beneficiary: BeneficiarySummary,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, uniffi::Record)]
pub struct FloatLine {
    pub currency: String,
    /// In hand when the day began.
    pub opening_minor: i64,
    pub received_minor: i64,
    pub paid_out_minor: i64,
    pub returned_minor: i64,
    /// What the agent should hold now.
    pub in_hand_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, uniffi::Record)]
pub struct StockLine {
    pub item_code: String,
    pub opening: i64,
    pub received: i64,
    pub handed_out: i64,
    pub returned: i64,
    pub in_hand: i64,
}

/// The agent's day: what was paid and handed out, and what should be in hand.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct DaySummary {
    pub day: String,
    pub payouts: u64,
    pub paid: Vec<Money>,
    pub distributions: u64,
    pub timesheets: u64,
    pub verifications: u64,
    pub grievances: u64,
    pub float: Vec<FloatLine>,
    pub stock: Vec<StockLine>,
    pub sync: SyncStatus,
}

/// How the collector proved who they are.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum ProofInput {
    /// The text of the beneficiary card's QR code, verified offline.
    Card { text: String },
    /// The agent re-enters their own PIN to witness the collector's identity.
    AgentPin { pin: String },
    /// A reference to a captured signature image.
    Signature { reference: String },
    /// A reference to a photo of the collector.
    Photo { reference: String },
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct PayoutInput {
    pub entitlement_id: String,
    pub collector_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub proof: ProofInput,
    /// Pay an entitlement this phone already paid: why (recorded and flagged).
    pub override_reason: Option<String>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct DistributionInput {
    pub entitlement_id: String,
    pub collector_id: String,
    pub items: Vec<ItemQuantity>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct TimesheetInput {
    pub project_id: String,
    /// The worker's beneficiary id.
    pub worker_id: String,
    /// `YYYY-MM-DD`.
    pub work_date: String,
    /// Hundredths of a day, 1 to 100.
    pub day_hundredths: i64,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct Question {
    pub name: String,
    /// `boolean`, `enum`, `text`, `number` or `date`, as the plan's schema says.
    pub kind: String,
    /// The allowed answers of an `enum` question.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct Answer {
    pub question: String,
    pub answer: String,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct VerificationInput {
    pub beneficiary_id: String,
    pub answers: Vec<Answer>,
    /// A status the verifier proposes (SUSPENDED, GRADUATED, ...): applied only once the office
    /// approves it.
    pub proposed_status: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct GrievanceInput {
    pub beneficiary_id: Option<String>,
    pub category: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct CommentView {
    pub author: String,
    pub at: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct GrievanceView {
    pub record_id: String,
    pub beneficiary_id: Option<String>,
    pub category: String,
    pub description: String,
    pub status: String,
    pub assignee: Option<String>,
    pub comments: Vec<CommentView>,
    pub created_at: String,
    pub own: bool,
}

#[derive(Debug, Clone, uniffi::Record)]
pub struct ContactInput {
    pub beneficiary_id: String,
    pub individual_id: String,
    pub phone: Option<String>,
    pub address: Option<String>,
}

/// Reference lists for the screens' pickers.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct Choice {
    pub id: String,
    pub code: String,
    pub name: String,
}

/// One of this phone's records, for the sync screen.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct RecordView {
    pub id: String,
    pub kind: String,
    /// This device's number for the record (per enrolment).
    pub seq: u64,
    /// Who made it; empty once that agent's enrolment is gone from the phone.
    pub agent_username: String,
    pub created_at: String,
    pub pending: bool,
    /// Why the server keeps it in quarantine, if it does.
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, uniffi::Enum)]
pub enum SyncPhase {
    Connecting,
    Uploading,
    Downloading,
    Receiving,
    Done,
}

/// Reported as a sync goes, for a progress bar.
#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct SyncProgressInfo {
    pub phase: SyncPhase,
    /// Records uploaded, replica rows applied or changes received, in this phase.
    pub items: u64,
    /// Records to upload, when known (the other phases cannot know).
    pub total: Option<u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// The app's progress listener.
#[uniffi::export(callback_interface)]
pub trait SyncListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgressInfo);
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct SyncReport {
    pub uploaded: u64,
    pub accepted: u64,
    /// Records the server kept in quarantine in this sync, with its reasons.
    pub refused: Vec<String>,
    pub replica_rows: u64,
    pub replica_tombstones: u64,
    pub replica_pages: u64,
    pub changes_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// What went wrong for an earlier agent's enrolment on this phone (its records wait),
    /// and how long a busy server kept this sync waiting.
    pub warnings: Vec<String>,
    pub status: SyncStatus,
}

#[derive(Debug, Clone, Serialize, uniffi::Record)]
pub struct Enrolled {
    pub device_id: String,
    pub agent_username: String,
    pub agent_name: String,
    pub assignment_code: String,
    pub assignment_name: String,
}
