//! Finding the same person registered twice, without trusting any one field.
//!
//! Records are folded (case, accents and script: every name is transliterated to Latin, so
//! "Hélène", "Helene" and "ሄለን" meet), paired by several blocking rules (a pair hides only if
//! every rule misses it), compared field by field into levels, and scored by a Fellegi-Sunter
//! model: each level's weight is log2(m / u), the odds that a true pair and a random pair
//! show it. u comes from random pairs of the registry, m is set per programme (defaults
//! here), the prior is estimated by expectation-maximisation over the candidates, and an exact
//! name match counts for more when the name is rare (term-frequency adjustment). Every score
//! carries its reasons in words.
//!
//! Pure: people in, scored pairs out; no database, no clock.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use chrono::{Datelike, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The match probability at or above which a pair is proposed for review. Chosen on the
/// labelled registries of `synth` (see the README's de-duplication section for the curve).
pub const DEFAULT_THRESHOLD: f64 = 0.6;

/// A block with more people than this is too common a key to pair exhaustively (half a
/// million pairs each); it is skipped and counted, and the other rules still pair its people.
pub const MAX_BLOCK: usize = 1_000;

/// The same for the rules without names (birthday and place, household, phone, ID): a block
/// that large is a placeholder (1 January 1900, an office's phone), not people alike.
pub const MAX_BLOCK_WITHOUT_NAMES: usize = 200;

/// A national ID is one piece of evidence, never the decider: its weight is held within this
/// many bits either way, less than the threshold needs on its own.
const ID_WEIGHT_CAP: f64 = 3.0;

/// A phone is shared by a household and changes hands: the same number is held within this
/// many bits, so siblings giving their parents' phone are not taken for one person.
const PHONE_WEIGHT_CAP: f64 = 5.0;

/// Among two members of one household, how often their given names differ: the u of "the
/// same household under another given name" (twins, alike in all else, show exactly that),
/// used in place of that level's u, which as a share of random pairs would be near zero.
const OTHER_MEMBER_U: f64 = 0.95;

/// One person as the matcher sees them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The registry's external id: what a reviewer and the JSON output name the person by.
    pub external_id: String,
    pub given_name: String,
    pub family_name: String,
    pub dob: Option<NaiveDate>,
    /// `M`, `F` or `O`.
    pub sex: Option<char>,
    /// The path of the person's village (`REGION/DISTRICT/VILLAGE` codes); its parent is the
    /// district.
    pub village: Option<String>,
    /// The household's code.
    pub household: Option<String>,
    /// The full names of the household's other members.
    pub household_members: Vec<String>,
    pub phone: Option<String>,
    pub national_id: Option<String>,
}

/// The fields compared, in the order of a comparison's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    GivenName,
    FamilyName,
    BirthDate,
    Sex,
    Location,
    Household,
    Phone,
    NationalId,
}

pub const FIELDS: [Field; 8] = [
    Field::GivenName,
    Field::FamilyName,
    Field::BirthDate,
    Field::Sex,
    Field::Location,
    Field::Household,
    Field::Phone,
    Field::NationalId,
];

const NAME_LEVELS: &[&str] = &[
    "exact",
    "same_names_reordered_or_subset",
    "known_short_form",
    "nearly_same_spelling",
    "sound_alike",
    "partly_alike",
    "different",
];

impl Field {
    /// The comparison levels, best first; a missing value on either side is no level at all.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Field::GivenName | Field::FamilyName => NAME_LEVELS,
            Field::BirthDate => &[
                "exact",
                "day_month_swapped",
                "one_digit_off",
                "first_of_january_default",
                "within_a_year_or_same_birthday",
                "different",
            ],
            Field::Sex => &["same", "different"],
            Field::Location => &["same_village", "same_district", "different"],
            Field::Household => &[
                "same_household",
                "same_household_other_given_name",
                "shared_members",
                "different",
            ],
            Field::Phone | Field::NationalId => &["same", "different"],
        }
    }

    /// The u probabilities of a typical registry: what random pairs show, before this
    /// registry's own random pairs are counted (they outweigh these from a few thousand on).
    fn default_u(self) -> &'static [f64] {
        match self {
            Field::GivenName | Field::FamilyName => {
                &[0.005, 0.0005, 0.0002, 0.002, 0.01, 0.02, 0.9623]
            }
            Field::BirthDate => &[0.0001, 0.00001, 0.001, 0.0003, 0.03, 0.96859],
            Field::Sex => &[0.5, 0.5],
            Field::Location => &[0.01, 0.09, 0.9],
            Field::Household => &[0.0005, 0.0001, 0.001, 0.9984],
            Field::Phone => &[0.0001, 0.9999],
            Field::NationalId => &[0.00001, 0.99999],
        }
    }

    /// How often a true pair shows each level: a model's m unless a programme sets its own.
    fn default_m(self) -> &'static [f64] {
        match self {
            Field::GivenName | Field::FamilyName => &[0.78, 0.03, 0.02, 0.09, 0.04, 0.03, 0.01],
            Field::BirthDate => &[0.76, 0.03, 0.06, 0.06, 0.08, 0.01],
            Field::Sex => &[0.97, 0.03],
            Field::Location => &[0.80, 0.12, 0.08],
            Field::Household => &[0.40, 0.016, 0.10, 0.484],
            Field::Phone => &[0.85, 0.15],
            Field::NationalId => &[0.95, 0.05],
        }
    }
}

/// Common short forms of given names, both ways: a programme adds its own.
const SHORT_FORMS: &[(&str, &str)] = &[
    ("william", "bill"),
    ("william", "will"),
    ("elizabeth", "liz"),
    ("elizabeth", "beth"),
    ("robert", "bob"),
    ("margaret", "maggie"),
    ("catherine", "kate"),
    ("patricia", "patty"),
    ("joseph", "joe"),
    ("james", "jim"),
    ("charles", "charlie"),
    ("thomas", "tom"),
    ("christopher", "chris"),
    ("christine", "chris"),
    ("mohammed", "mo"),
    ("abdullah", "abdul"),
    ("alexander", "alex"),
    ("rebecca", "becky"),
    ("benjamin", "ben"),
    ("samuel", "sam"),
    ("daniel", "dan"),
    ("joshua", "josh"),
    ("edward", "ted"),
    ("richard", "dick"),
    ("grace", "gracie"),
    ("esther", "essie"),
    ("jean", "jeannot"),
    ("marie", "mimi"),
];

/// Case, accents and script set aside: transliterated to Latin, lower case, letters and
/// digits only, one space between parts ("Hélène-Marie  O'Brien" → "helene marie obrien").
pub fn fold(s: &str) -> String {
    let latin = any_ascii::any_ascii(s);
    let mut out = String::with_capacity(latin.len());
    let mut gap = true;
    for c in latin.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            gap = false;
        } else if (c.is_whitespace() || matches!(c, '-' | '.' | ',' | '_' | '/')) && !gap {
            out.push(' ');
            gap = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A consonant skeleton in Soundex's groups, vowels, h, w and y dropped and repeats merged:
/// "Mohammed", "Mehamed" (from Ethiopic) and "mhmd" (from Arabic, which writes no short
/// vowels) all give "53". Hand-written because it is ten lines, and Soundex as the crates
/// have it keeps the first letter, which transliteration from Arabic often changes.
fn sound(folded: &str) -> String {
    let mut out = String::new();
    let mut last = 0u8;
    for b in folded.bytes() {
        let code = match b {
            b'b' | b'f' | b'p' | b'v' => b'1',
            b'c' | b'g' | b'j' | b'k' | b'q' | b's' | b'x' | b'z' => b'2',
            b'd' | b't' => b'3',
            b'l' => b'4',
            b'm' | b'n' => b'5',
            b'r' => b'6',
            _ => continue,
        };
        if code != last {
            out.push(code as char);
            last = code;
            if out.len() == 6 {
                break;
            }
        }
    }
    out
}

/// A name ready to compare.
#[derive(Debug, Clone, Default)]
struct Name {
    folded: String,
    /// The parts sorted, so "Mary Jane" and "Jane Mary" compare alike.
    sorted: String,
    tokens: Vec<String>,
    sound: String,
}

impl Name {
    fn new(raw: &str) -> Name {
        let folded = fold(raw);
        let mut tokens: Vec<String> = folded
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let mut parts = tokens.clone();
        parts.sort();
        tokens.dedup();
        Name {
            sound: sound(&folded),
            sorted: parts.join(" "),
            tokens,
            folded,
        }
    }
}

/// A person folded once, compared many times.
#[derive(Debug, Clone)]
pub struct Prepared {
    given: Name,
    family: Name,
    dob: Option<NaiveDate>,
    sex: Option<char>,
    village: Option<String>,
    district: Option<String>,
    household: Option<String>,
    members: Vec<String>,
    phone: Option<String>,
    national_id: Option<String>,
}

impl Prepared {
    pub fn new(p: &Person) -> Prepared {
        let village = p.village.clone().filter(|v| !v.is_empty());
        let district = village
            .as_deref()
            .and_then(|v| v.rsplit_once('/'))
            .map(|(d, _)| d.to_owned());
        let mut members: Vec<String> = p
            .household_members
            .iter()
            .map(|m| fold(m))
            .filter(|m| !m.is_empty())
            .collect();
        members.sort();
        members.dedup();
        // The last nine digits: "+265 991 234 567" and "0991234567" are one number.
        let phone = p.phone.as_deref().map(|ph| {
            let digits: String = ph.chars().filter(char::is_ascii_digit).collect();
            digits[digits.len().saturating_sub(9)..].to_owned()
        });
        let national_id = p.national_id.as_deref().map(|id| {
            id.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_uppercase()
        });
        Prepared {
            given: Name::new(&p.given_name),
            family: Name::new(&p.family_name),
            dob: p.dob,
            sex: p.sex,
            village,
            district,
            household: p.household.clone().filter(|h| !h.is_empty()),
            members,
            phone: phone.filter(|p| p.len() >= 6),
            national_id: national_id.filter(|id| !id.is_empty()),
        }
    }
}

/// Two records compared: a level per field (None where either lacks the value).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Comparison {
    pub levels: [Option<u8>; 8],
    /// The given and family names matched crosswise.
    pub swapped: bool,
    given_similarity: f32,
    family_similarity: f32,
}

fn short_form(a: &str, b: &str) -> bool {
    SHORT_FORMS
        .iter()
        .any(|&(long, short)| (a == long && b == short) || (a == short && b == long))
}

/// A name level and the Jaro-Winkler similarity behind it; None where either is missing.
type NameLevel = Option<(u8, f32)>;

fn compare_name(a: &Name, b: &Name) -> NameLevel {
    if a.folded.is_empty() || b.folded.is_empty() {
        return None;
    }
    if a.folded == b.folded {
        return Some((0, 1.0));
    }
    let mut jw = strsim::jaro_winkler(&a.folded, &b.folded);
    if a.tokens.len() > 1 || b.tokens.len() > 1 {
        jw = jw.max(strsim::jaro_winkler(&a.sorted, &b.sorted));
    }
    let jw = jw as f32;
    let (short, long) = if a.tokens.len() <= b.tokens.len() {
        (a, b)
    } else {
        (b, a)
    };
    if a.sorted == b.sorted || short.tokens.iter().all(|t| long.tokens.contains(t)) {
        return Some((1, jw));
    }
    if a.tokens
        .iter()
        .any(|x| b.tokens.iter().any(|y| short_form(x, y)))
    {
        return Some((2, jw));
    }
    if jw >= 0.90 {
        return Some((3, jw));
    }
    // The consonant code is coarse: it speaks only for names that are also partly alike.
    if !a.sound.is_empty() && a.sound == b.sound && jw >= 0.70 {
        return Some((4, jw));
    }
    if jw >= 0.80 {
        return Some((5, jw));
    }
    Some((6, jw))
}

fn compare_dob(a: NaiveDate, b: NaiveDate) -> u8 {
    if a == b {
        return 0;
    }
    if a.year() == b.year() && a.day() == b.month() && a.month() == b.day() {
        return 1;
    }
    // The eight digits of YYYYMMDD, compared without formatting (this runs per pair).
    let digits = |d: NaiveDate| d.year() as u32 * 10_000 + d.month() * 100 + d.day();
    let (mut x, mut y, mut differ) = (digits(a), digits(b), 0);
    for _ in 0..8 {
        differ += u32::from(x % 10 != y % 10);
        x /= 10;
        y /= 10;
    }
    if differ == 1 {
        return 2;
    }
    let first_of_january = |d: NaiveDate| d.month() == 1 && d.day() == 1;
    if a.year() == b.year() && (first_of_january(a) || first_of_january(b)) {
        return 3;
    }
    if (a - b).num_days().abs() <= 366 || (a.month(), a.day()) == (b.month(), b.day()) {
        return 4;
    }
    5
}

fn same_or_not<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> Option<u8> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if a == b { 0 } else { 1 }),
        _ => None,
    }
}

/// Whether two households have at least half their other members' names in common (a
/// household registered twice): of the smaller one's, so a couple registered twice (one
/// other member each) counts, while one shared name among several, which two households of
/// one family name often have by chance, does not.
fn shares_members(a: &[String], b: &[String]) -> bool {
    let smaller = a.len().min(b.len());
    if smaller == 0 {
        return false;
    }
    // Both sorted: a merge walk.
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    shared * 2 >= smaller
}

/// How two records compare, field by field.
pub fn compare(a: &Prepared, b: &Prepared) -> Comparison {
    let straight = (
        compare_name(&a.given, &b.given),
        compare_name(&a.family, &b.family),
    );
    let rank = |(g, f): &(NameLevel, NameLevel)| {
        g.map_or(6, |(l, _)| l as u32) + f.map_or(6, |(l, _)| l as u32)
    };
    let mut names = straight;
    let mut swapped = false;
    if rank(&straight) > 2 {
        let crosswise = (
            compare_name(&a.given, &b.family),
            compare_name(&a.family, &b.given),
        );
        // Crosswise only when clearly better, so two people who merely share a name that is a
        // given name for one and a family name for the other are not taken for swapped.
        if rank(&crosswise) + 2 < rank(&straight) {
            names = crosswise;
            swapped = true;
        }
    }
    let location = match (&a.village, &b.village) {
        (Some(x), Some(y)) if x == y => Some(0),
        (Some(_), Some(_)) if a.district.is_some() && a.district == b.district => Some(1),
        (Some(_), Some(_)) => Some(2),
        _ => None,
    };
    // In one household the given name is what tells members apart (twins share everything
    // else), so a household shared under another given name is a level of its own.
    let household = match (&a.household, &b.household) {
        (Some(x), Some(y)) if x == y => Some(if names.0.is_some_and(|(l, _)| l >= 5) {
            1
        } else {
            0
        }),
        (Some(_), Some(_)) if shares_members(&a.members, &b.members) => Some(2),
        (Some(_), Some(_)) => Some(3),
        _ => None,
    };
    Comparison {
        levels: [
            names.0.map(|(l, _)| l),
            names.1.map(|(l, _)| l),
            match (a.dob, b.dob) {
                (Some(x), Some(y)) => Some(compare_dob(x, y)),
                _ => None,
            },
            same_or_not(&a.sex, &b.sex),
            location,
            household,
            same_or_not(&a.phone, &b.phone),
            same_or_not(&a.national_id, &b.national_id),
        ],
        swapped,
        given_similarity: names.0.map_or(0.0, |(_, s)| s),
        family_similarity: names.1.map_or(0.0, |(_, s)| s),
    }
}

/// One field's probabilities per level: m among true pairs, u among random pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldWeights {
    pub field: Field,
    pub m: Vec<f64>,
    pub u: Vec<f64>,
}

/// A Fellegi-Sunter model: what each level of each field says, and how likely a candidate
/// pair is to be a true one before any field is looked at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The share of all pairs of the registry that are true pairs.
    pub prior: f64,
    /// One entry per field, in [`FIELDS`] order.
    pub fields: Vec<FieldWeights>,
}

/// A model that does not fit its fields' levels (from a hand-edited file).
#[derive(Debug, thiserror::Error)]
#[error("the matching model is not usable: {0}")]
pub struct ModelError(String);

impl Model {
    /// Checks a model read from a file: every field once and in order, a probability per
    /// level, each in (0, 1].
    pub fn check(&self) -> Result<(), ModelError> {
        if !(self.prior > 0.0 && self.prior < 1.0) {
            return Err(ModelError(format!(
                "prior {} is not within (0, 1)",
                self.prior
            )));
        }
        if self.fields.len() != FIELDS.len() {
            return Err(ModelError(format!(
                "{} fields, expected {}",
                self.fields.len(),
                FIELDS.len()
            )));
        }
        for (weights, field) in self.fields.iter().zip(FIELDS) {
            if weights.field != field {
                return Err(ModelError(format!(
                    "{:?} is where {:?} belongs",
                    weights.field, field
                )));
            }
            let n = field.levels().len();
            for (what, ps) in [("m", &weights.m), ("u", &weights.u)] {
                if ps.len() != n {
                    return Err(ModelError(format!(
                        "{field:?}: {} {what} values for {n} levels",
                        ps.len()
                    )));
                }
                if let Some(p) = ps.iter().find(|p| !(**p > 0.0 && **p <= 1.0)) {
                    return Err(ModelError(format!(
                        "{field:?}: {what} value {p} is not within (0, 1]"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The bits (log2 Bayes factor) a field's level adds; a national ID's and a phone's held
    /// within their caps.
    fn bits(&self, field: usize, level: u8) -> f64 {
        let w = &self.fields[field];
        let (m, u) = (w.m[level as usize], w.u[level as usize]);
        match (FIELDS[field], level) {
            // One household's members are alike in everything a register holds but their
            // given names and birthdays: sharing a household says nothing by itself.
            (Field::Household, 0) => 0.0,
            (Field::Household, 1) => (m / OTHER_MEMBER_U).log2(),
            (Field::NationalId, _) => (m / u).log2().clamp(-ID_WEIGHT_CAP, ID_WEIGHT_CAP),
            (Field::Phone, _) => (m / u).log2().clamp(-PHONE_WEIGHT_CAP, PHONE_WEIGHT_CAP),
            _ => (m / u).log2(),
        }
    }
}

/// How often each folded name occurs, for the term-frequency adjustment.
#[derive(Debug, Default)]
pub struct Frequencies {
    given: HashMap<String, u32>,
    family: HashMap<String, u32>,
    people: usize,
}

impl Frequencies {
    pub fn of(people: &[Prepared]) -> Frequencies {
        let mut f = Frequencies {
            people: people.len(),
            ..Frequencies::default()
        };
        for p in people {
            *f.given.entry(p.given.folded.clone()).or_default() += 1;
            *f.family.entry(p.family.folded.clone()).or_default() += 1;
        }
        f
    }

    fn share(&self, field: Field, name: &str) -> f64 {
        let table = if field == Field::GivenName {
            &self.given
        } else {
            &self.family
        };
        let n = table.get(name).copied().unwrap_or(1).max(1);
        n as f64 / self.people.max(1) as f64
    }
}

/// A pair's weight: the prior's bits, each field's, and the term-frequency adjustment of an
/// exact name match (a shared rare name says more than a shared common one).
fn weight(model: &Model, freq: &Frequencies, a: &Prepared, c: &Comparison) -> f64 {
    let mut w = (model.prior / (1.0 - model.prior)).log2();
    for (i, level) in c.levels.iter().enumerate() {
        if let Some(level) = *level {
            w += model.bits(i, level);
            // The given-name level compares a's given name (with b's given or, swapped, family
            // name), so its rarity is a's given name's among given names; likewise family.
            if i <= 1 && level == 0 {
                let name = if i == 0 {
                    &a.given.folded
                } else {
                    &a.family.folded
                };
                w += tf_bits(model, freq, i, name);
            }
        }
    }
    w
}

fn tf_bits(model: &Model, freq: &Frequencies, field: usize, name: &str) -> f64 {
    let u_exact = model.fields[field].u[0];
    (u_exact / freq.share(FIELDS[field], name)).log2()
}

fn probability(weight: f64) -> f64 {
    let odds = weight.exp2();
    if odds.is_infinite() {
        1.0
    } else {
        odds / (1.0 + odds)
    }
}

/// Candidate pairs, each once, as indices into the prepared people (lower first).
#[derive(Debug, Default)]
pub struct Candidates {
    pub pairs: Vec<(u32, u32)>,
    /// Blocks larger than [`MAX_BLOCK`], not paired (their people may still pair by another
    /// rule).
    pub skipped_blocks: usize,
}

/// The blocking rules, each a key two records must share to be compared. Several, so that a
/// pair hides only when every rule misses it: a typo in the family name still meets by given
/// name and birthday, a wrong birthday by both names in the district, both names garbled by
/// birthday and village or district, swapped names by the sorted pair of sounds, a missing
/// birthday by the household. Each rule keeps blocks small where a few names are shared by
/// a large part of the country (a tenth of Malawi is called Banda).
fn block_keys(p: &Prepared, out: &mut Vec<(u8, u64)>) {
    macro_rules! key {
        ($rule:expr, $($part:expr),+) => {{
            let mut h = DefaultHasher::new();
            ($rule as u8).hash(&mut h);
            $($part.hash(&mut h);)+
            ($rule as u8, h.finish())
        }};
    }
    out.clear();
    let year = p.dob.map(|d| d.year());
    let (g, f) = (&p.given.sound, &p.family.sound);
    let (lo, hi) = if g <= f { (g, f) } else { (f, g) };
    let initial = p.given.folded.as_bytes().first();
    // Names alike (either order) in one district, or born the same year anywhere.
    if !g.is_empty() && !f.is_empty() {
        if let Some(district) = &p.district {
            out.push(key!(0, lo, hi, district));
        }
        if year.is_some() {
            out.push(key!(1, lo, hi, &year));
        }
    }
    // A garbled given name keeping its first letter.
    if let (false, Some(_), Some(i)) = (f.is_empty(), year, initial) {
        out.push(key!(2, f, &year, i));
    }
    // A changed or garbled family name.
    if let (false, Some(d)) = (g.is_empty(), p.dob) {
        out.push(key!(3, g, &d));
    }
    // Both names garbled, in the district (or the village, where it has none).
    if let (Some(d), Some(place)) = (p.dob, p.district.as_ref().or(p.village.as_ref())) {
        out.push(key!(5, &d, place));
    }
    // Everyone of a household against everyone else of it: a few pairs each, and a person
    // listed twice in one household is the commonest duplicate with no birthday recorded.
    if let Some(h) = &p.household {
        out.push(key!(6, h));
    }
    if let Some(phone) = &p.phone {
        out.push(key!(7, phone));
    }
    if let Some(id) = &p.national_id {
        out.push(key!(8, id));
    }
}

/// The pairs the blocking rules propose.
pub fn candidates(people: &[Prepared]) -> Candidates {
    let mut keyed: Vec<(u64, u8, u32)> = Vec::with_capacity(people.len() * 4);
    let mut keys = Vec::with_capacity(6);
    for (i, p) in people.iter().enumerate() {
        block_keys(p, &mut keys);
        keyed.extend(keys.iter().map(|&(rule, k)| (k, rule, i as u32)));
    }
    keyed.sort_unstable();
    let mut out = Candidates::default();
    let mut packed: Vec<u64> = Vec::new();
    for block in keyed.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let cap = if block[0].1 <= 3 {
            MAX_BLOCK
        } else {
            MAX_BLOCK_WITHOUT_NAMES
        };
        if block.len() > cap {
            out.skipped_blocks += 1;
            continue;
        }
        for (x, &(_, _, i)) in block.iter().enumerate() {
            for &(_, _, j) in &block[x + 1..] {
                if i != j {
                    let (lo, hi) = if i < j { (i, j) } else { (j, i) };
                    packed.push((lo as u64) << 32 | hi as u64);
                }
            }
        }
    }
    packed.sort_unstable();
    packed.dedup();
    out.pairs = packed
        .into_iter()
        .map(|p| ((p >> 32) as u32, p as u32))
        .collect();
    out
}

/// Counts per level over some comparisons, with a pseudo-count so no level is ever zero.
fn level_shares(
    comparisons: impl Iterator<Item = (Comparison, f64)>,
    pseudo: &[&[f64]],
) -> Vec<Vec<f64>> {
    let mut counts: Vec<Vec<f64>> = FIELDS.iter().map(|f| vec![0.0; f.levels().len()]).collect();
    for (c, w) in comparisons {
        for (i, level) in c.levels.iter().enumerate() {
            if let Some(l) = level {
                counts[i][*l as usize] += w;
            }
        }
    }
    counts
        .into_iter()
        .zip(pseudo)
        .map(|(row, prior)| {
            let total: f64 = row.iter().sum::<f64>() + prior.iter().sum::<f64>();
            row.iter()
                .zip(prior.iter())
                .map(|(c, p)| (c + p) / total)
                .collect()
        })
        .collect()
}

/// Estimates a model from the registry itself: u from random pairs of its people (nearly all
/// of them different people; every pair of a small registry, drawn towards a typical
/// registry's u so a few dozen people give sensible weights), m as the programme set it (the
/// defaults unless a model file says otherwise), and the prior by expectation-maximisation
/// over the candidate pairs with m and u held. m is not estimated by EM here: tried on registries whose households share
/// family names and villages, EM settles on namesakes or siblings as the "true" class (the
/// fields are far from independent among candidates), where hand-set m stays right.
pub fn estimate(
    people: &[Prepared],
    pairs: &[(u32, u32)],
    compared: &[Comparison],
    freq: &Frequencies,
    seed: u64,
) -> Model {
    const RANDOM_PAIRS: usize = 200_000;
    const DEFAULT_U_PAIRS: f64 = 2_000.0;
    let n = people.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Every pair of a small registry; a sample of a large one.
    let random_pairs: Vec<(usize, usize)> = if n * n.saturating_sub(1) / 2 <= RANDOM_PAIRS {
        (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .collect()
    } else {
        (0..RANDOM_PAIRS)
            .map(|_| (rng.random_range(0..n), rng.random_range(0..n)))
            .filter(|(i, j)| i != j)
            .collect()
    };
    let compare_pairs = |pairs: &[(usize, usize)]| {
        on_every_core(pairs, |_, &(i, j)| {
            Some((compare(&people[i], &people[j]), 1.0))
        })
    };
    let random = compare_pairs(&random_pairs).into_iter();
    let prior_u: Vec<Vec<f64>> = FIELDS
        .iter()
        .map(|f| f.default_u().iter().map(|u| u * DEFAULT_U_PAIRS).collect())
        .collect();
    let prior_refs: Vec<&[f64]> = prior_u.iter().map(Vec::as_slice).collect();
    let mut u = level_shares(random, &prior_refs);
    // Village and household: namesakes and siblings share them far more often than random
    // pairs do, and a candidate is compared against exactly such people. So their u is
    // measured among pairs of people with the same family name (nearly all of them
    // different people), whoever the blocking rules happen to propose.
    let mut by_family: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in people.iter().enumerate() {
        if !p.family.sound.is_empty() {
            by_family
                .entry(p.family.sound.as_str())
                .or_default()
                .push(i);
        }
    }
    if by_family.values().any(|v| v.len() > 1) {
        // A person at random, then another of their family name: pairs in proportion to how
        // many people share each name.
        let namesakes: Vec<(usize, usize)> = (0..RANDOM_PAIRS)
            .filter_map(|_| {
                let i = rng.random_range(0..n);
                let group = by_family.get(people[i].family.sound.as_str())?;
                let j = group[rng.random_range(0..group.len())];
                (i != j).then_some((i, j))
            })
            .collect();
        let namesakes = compare_pairs(&namesakes).into_iter();
        let context = level_shares(namesakes, &prior_refs);
        for field in [Field::Location, Field::Household] {
            u[field as usize] = context[field as usize].clone();
        }
    }
    let mut model = Model {
        prior: 0.05,
        fields: FIELDS
            .iter()
            .zip(u)
            .map(|(f, u)| FieldWeights {
                field: *f,
                m: f.default_m().to_vec(),
                u,
            })
            .collect(),
    };
    estimate_prior(people, pairs, compared, freq, &mut model);
    model
}

/// The share of true pairs among *all* pairs of the registry, by expectation-maximisation over
/// the candidates with every m and u held (the expected true pairs among the candidates,
/// those outside taken as none), as Splink has it: a candidate was chosen for agreeing on
/// something, so a prior over candidates would count that twice. Always estimated, also for
/// a model from a file, since it depends on the registry's size.
pub fn estimate_prior(
    people: &[Prepared],
    pairs: &[(u32, u32)],
    compared: &[Comparison],
    freq: &Frequencies,
    model: &mut Model,
) {
    let n = people.len() as f64;
    let all_pairs = (n * (n - 1.0) / 2.0).max(1.0);
    // Each pair's bits as scoring counts them (term-frequency adjustment included), without
    // the prior: weight() with even odds.
    let even = Model {
        prior: 0.5,
        fields: model.fields.clone(),
    };
    let bits: Vec<f64> = pairs
        .iter()
        .zip(compared)
        .map(|(&(i, _), c)| weight(&even, freq, &people[i as usize], c))
        .collect();
    model.prior = (bits.len() as f64 * 0.05 / all_pairs).clamp(1e-12, 0.5);
    if bits.is_empty() {
        return;
    }
    for _ in 0..50 {
        let logit = (model.prior / (1.0 - model.prior)).log2();
        let expected: f64 = bits.iter().map(|b| probability(logit + b)).sum();
        let prior = (expected / all_pairs).clamp(1e-12, 0.5);
        let settled = (prior / model.prior - 1.0).abs() < 1e-4;
        model.prior = prior;
        if settled {
            break;
        }
    }
}

/// One field's part in a score, in a reviewer's words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub field: Field,
    /// The level, as in [`Field::levels`], or `missing`.
    pub level: &'static str,
    pub finding: String,
    /// Bits for (positive) or against (negative) the two being one person.
    pub weight: f64,
}

/// A scored pair, indices into the people given.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub first: u32,
    pub second: u32,
    pub weight: f64,
    pub probability: f64,
    pub comparison: Comparison,
}

/// Runs `f` over `items` in one chunk per core, the chunks' results in order.
fn on_every_core<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> Option<R> + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .filter_map(|(i, item)| f(k * chunk + i, item))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a matching thread panicked"))
            .collect()
    })
}

/// Compares every candidate pair once, on every core: estimation and scoring both read these.
/// Written in place, so the largest allocation of a run (tens of millions of comparisons) is
/// made once, not gathered from the threads into a second copy.
pub fn compare_all(people: &[Prepared], pairs: &[(u32, u32)]) -> Vec<Comparison> {
    let mut out = vec![Comparison::default(); pairs.len()];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = pairs.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (slots, part) in out.chunks_mut(chunk).zip(pairs.chunks(chunk)) {
            s.spawn(move || {
                for (slot, &(i, j)) in slots.iter_mut().zip(part) {
                    *slot = compare(&people[i as usize], &people[j as usize]);
                }
            });
        }
    });
    out
}

/// Scores the compared candidate pairs, keeping those at or above `threshold`, best first.
pub fn score(
    people: &[Prepared],
    pairs: &[(u32, u32)],
    compared: &[Comparison],
    model: &Model,
    freq: &Frequencies,
    threshold: f64,
) -> Vec<Scored> {
    let mut out = on_every_core(compared, |k, c| {
        let (i, j) = pairs[k];
        let w = weight(model, freq, &people[i as usize], c);
        let p = probability(w);
        (p >= threshold).then_some(Scored {
            first: i,
            second: j,
            weight: w,
            probability: p,
            comparison: *c,
        })
    });
    out.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then((a.first, a.second).cmp(&(b.first, b.second)))
    });
    out
}

fn show_date(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "not recorded".to_owned(), |d| d.to_string())
}

/// The reasons behind a score, one per field, in the words a reviewer reads.
pub fn explain(
    model: &Model,
    freq: &Frequencies,
    a: (&Person, &Prepared),
    b: (&Person, &Prepared),
    c: &Comparison,
) -> Vec<Evidence> {
    let (pa, xa) = a;
    let (pb, _) = b;
    let mut out = Vec::with_capacity(FIELDS.len() + 1);
    for (i, field) in FIELDS.iter().enumerate() {
        let level = c.levels[i];
        let mut bits = level.map_or(0.0, |l| model.bits(i, l));
        let finding = match field {
            Field::GivenName | Field::FamilyName => {
                let own = if *field == Field::GivenName {
                    &pa.given_name
                } else {
                    &pa.family_name
                };
                let (own_folded, theirs, sim) = match (*field, c.swapped) {
                    (Field::GivenName, false) => {
                        (&xa.given.folded, &pb.given_name, c.given_similarity)
                    }
                    (Field::GivenName, true) => {
                        (&xa.given.folded, &pb.family_name, c.given_similarity)
                    }
                    (_, false) => (&xa.family.folded, &pb.family_name, c.family_similarity),
                    (_, true) => (&xa.family.folded, &pb.given_name, c.family_similarity),
                };
                let pair = format!("{own} / {theirs}");
                let alike = (sim * 100.0).round();
                match level {
                    None => "not recorded for one of them".to_owned(),
                    Some(0) => {
                        bits += tf_bits(model, freq, i, own_folded);
                        let share = freq.share(*field, own_folded) * 100.0;
                        let how = if own == theirs {
                            "the same"
                        } else {
                            "the same once case, accents and script are set aside"
                        };
                        format!("{pair}: {how}; {share:.2} % of people have it")
                    }
                    Some(1) => format!(
                        "{pair}: the same names in another order, or one has a name the other lacks"
                    ),
                    Some(2) => format!("{pair}: one is a known short form of the other"),
                    Some(3) => format!("{pair}: nearly the same spelling ({alike} % alike)"),
                    Some(4) => {
                        format!("{pair}: spelled differently but sound alike ({alike} % alike)")
                    }
                    Some(5) => format!("{pair}: partly alike ({alike} % alike)"),
                    Some(_) => format!("{pair}: different ({alike} % alike)"),
                }
            }
            Field::BirthDate => {
                let pair = format!("{} / {}", show_date(pa.dob), show_date(pb.dob));
                match level {
                    None => format!("{pair}: not recorded for one of them"),
                    Some(0) => format!("{pair}: the same"),
                    Some(1) => format!("{pair}: day and month swapped"),
                    Some(2) => format!("{pair}: one digit differs"),
                    Some(3) => format!(
                        "{pair}: one is 1 January of the same year, the usual stand-in for an unknown birthday"
                    ),
                    Some(4)
                        if pa
                            .dob
                            .zip(pb.dob)
                            .is_some_and(|(x, y)| (x.month(), x.day()) == (y.month(), y.day())) =>
                    {
                        format!(
                            "{pair}: the same day and month, another year (a guessed year of birth)"
                        )
                    }
                    Some(4) => format!("{pair}: within a year of each other"),
                    Some(_) => format!("{pair}: different"),
                }
            }
            Field::Sex => {
                let show =
                    |s: Option<char>| s.map_or_else(|| "not recorded".to_owned(), String::from);
                let pair = format!("{} / {}", show(pa.sex), show(pb.sex));
                match level {
                    None => format!("{pair}: not recorded for one of them"),
                    Some(0) => format!("{pair}: the same"),
                    Some(_) => format!("{pair}: different"),
                }
            }
            Field::Location => {
                let show =
                    |v: &Option<String>| v.clone().unwrap_or_else(|| "no village".to_owned());
                let pair = format!("{} / {}", show(&pa.village), show(&pb.village));
                match level {
                    None => format!("{pair}: not recorded for one of them"),
                    Some(0) => format!("{pair}: the same village"),
                    Some(1) => format!("{pair}: other villages of the same district"),
                    Some(_) => {
                        format!("{pair}: different districts (or villages of unknown districts)")
                    }
                }
            }
            Field::Household => {
                let show =
                    |v: &Option<String>| v.clone().unwrap_or_else(|| "no household".to_owned());
                let pair = format!("{} / {}", show(&pa.household), show(&pb.household));
                match level {
                    None => format!("{pair}: not recorded for one of them"),
                    Some(0) => format!(
                        "{pair}: the same household (which says nothing by itself: its members share most of what a register holds)"
                    ),
                    Some(1) => format!(
                        "{pair}: the same household, where a different given name usually means another member"
                    ),
                    Some(2) => format!(
                        "{pair}: the two households have at least half their other members' names in common"
                    ),
                    Some(_) => format!("{pair}: different households"),
                }
            }
            Field::Phone => match level {
                None => "not recorded for one of them".to_owned(),
                Some(0) => "the same number".to_owned(),
                Some(_) => "different numbers".to_owned(),
            },
            Field::NationalId => match level {
                None => "not recorded for one of them".to_owned(),
                Some(0) => format!(
                    "the same ID (counts for at most {ID_WEIGHT_CAP} bits: never the decider)"
                ),
                Some(_) => format!(
                    "different IDs (counts against by at most {ID_WEIGHT_CAP} bits: IDs are mistyped too)"
                ),
            },
        };
        let finding = if i == 0 && c.swapped {
            format!("{finding} (given and family names are swapped between the two records)")
        } else {
            finding
        };
        out.push(Evidence {
            field: *field,
            level: level.map_or("missing", |l| field.levels()[l as usize]),
            finding,
            weight: (bits * 100.0).round() / 100.0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(given: &str, family: &str, dob: &str, village: &str) -> Person {
        Person {
            external_id: format!("{given}-{family}-{dob}"),
            given_name: given.to_owned(),
            family_name: family.to_owned(),
            dob: NaiveDate::parse_from_str(dob, "%Y-%m-%d").ok(),
            sex: Some('F'),
            village: Some(village.to_owned()),
            household: None,
            household_members: vec![],
            phone: None,
            national_id: None,
        }
    }

    fn model_of(prepared: &[Prepared]) -> Model {
        let pairs = candidates(prepared).pairs;
        let compared = compare_all(prepared, &pairs);
        estimate(prepared, &pairs, &compared, &Frequencies::of(prepared), 1)
    }

    fn levels(a: &Person, b: &Person) -> Comparison {
        compare(&Prepared::new(a), &Prepared::new(b))
    }

    #[test]
    fn folding_sets_aside_case_accents_marks_and_script() {
        assert_eq!(fold("Hélène-Marie  O'Brien"), "helene marie obrien");
        assert_eq!(fold("ŁUKASZ"), "lukasz");
        assert_eq!(fold("ከበደ"), fold("Kebede"));
        assert_eq!(fold("  "), "");
    }

    #[test]
    fn the_sound_code_meets_across_scripts_that_drop_vowels() {
        assert_eq!(sound(&fold("Mohammed")), "53");
        assert_eq!(sound(&fold("محمد")), "53");
        assert_eq!(sound(&fold("መሐመድ")), "53");
        assert_eq!(sound(&fold("Fatima")), sound(&fold("فاطمة")));
        assert_ne!(sound(&fold("Banda")), sound(&fold("Phiri")));
    }

    #[test]
    fn names_compare_by_level() {
        let n = |s: &str| Name::new(s);
        assert_eq!(compare_name(&n("Hélène"), &n("helene")).unwrap().0, 0);
        assert_eq!(compare_name(&n("Mary Jane"), &n("Jane Mary")).unwrap().0, 1);
        assert_eq!(compare_name(&n("Mary"), &n("Mary Jane")).unwrap().0, 1);
        assert_eq!(compare_name(&n("Bill"), &n("William")).unwrap().0, 2);
        assert_eq!(compare_name(&n("Chikondi"), &n("Chikondl")).unwrap().0, 3);
        assert_eq!(compare_name(&n("Mohammed"), &n("محمد")).unwrap().0, 4);
        assert_eq!(compare_name(&n("Banda"), &n("Phiri")).unwrap().0, 6);
        assert_eq!(compare_name(&n(""), &n("Phiri")), None);
    }

    #[test]
    fn birth_dates_compare_by_the_mistakes_registration_makes() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(compare_dob(d("1990-03-04"), d("1990-03-04")), 0);
        assert_eq!(compare_dob(d("1990-03-04"), d("1990-04-03")), 1);
        assert_eq!(compare_dob(d("1990-03-04"), d("1980-03-04")), 2);
        assert_eq!(compare_dob(d("1990-01-01"), d("1990-07-19")), 3);
        assert_eq!(compare_dob(d("1990-07-19"), d("1991-05-02")), 4);
        assert_eq!(compare_dob(d("1990-07-19"), d("1975-11-23")), 5);
    }

    #[test]
    fn swapped_names_are_matched_crosswise_and_said_so() {
        let a = person("Chisomo", "Banda", "1990-03-04", "R/D/V1");
        let b = person("Banda", "Chisomo", "1990-03-04", "R/D/V1");
        let c = levels(&a, &b);
        assert!(c.swapped);
        assert_eq!(&c.levels[..2], &[Some(0), Some(0)]);
        // Two people merely sharing a name are compared straight.
        let d = person("Chisomo", "Phiri", "1990-03-04", "R/D/V1");
        assert!(!levels(&a, &d).swapped);
    }

    #[test]
    fn location_household_phone_and_id_levels() {
        let mut a = person("Grace", "Banda", "1990-03-04", "R/D1/V1");
        let mut b = person("Grace", "Banda", "1990-03-04", "R/D1/V2");
        a.household = Some("H1".into());
        b.household = Some("H2".into());
        a.household_members = vec!["Yohane Banda".into()];
        b.household_members = vec!["yohane  BANDA".into(), "Tiyamike Banda".into()];
        a.phone = Some("+265 991 234 567".into());
        b.phone = Some("0991234567".into());
        a.national_id = Some("ab-123".into());
        b.national_id = Some("AB123".into());
        let c = levels(&a, &b);
        assert_eq!(c.levels[4..], [Some(1), Some(2), Some(0), Some(0)]);
        b.village = Some("R/D2/V9".into());
        b.household_members.clear();
        b.national_id = None;
        let c = levels(&a, &b);
        assert_eq!(c.levels[4..], [Some(2), Some(3), Some(0), None]);
    }

    #[test]
    fn blocking_pairs_each_candidate_once_and_finds_a_pair_any_single_field_hides() {
        let people = [
            person("Grace", "Banda", "1990-03-04", "R/D/V1"),
            // Family name garbled: met by given name and birthday.
            person("Grace", "Xqzw", "1990-03-04", "R/D/V2"),
            // Birth year wrong: met by both names.
            person("Grace", "Banda", "1972-11-30", "R/D/V3"),
            // Both names garbled: met by birthday and village.
            person("Qqq", "Zzz", "1990-03-04", "R/D/V1"),
            person("Chisomo", "Phiri", "1961-06-06", "R/D/V4"),
        ];
        let prepared: Vec<Prepared> = people.iter().map(Prepared::new).collect();
        let found = candidates(&prepared).pairs;
        for pair in [(0, 1), (0, 2), (0, 3)] {
            assert!(found.contains(&pair), "{pair:?} missing from {found:?}");
        }
        assert!(!found.iter().any(|&(a, b)| a == 4 || b == 4));
        let unique: std::collections::HashSet<_> = found.iter().collect();
        assert_eq!(unique.len(), found.len(), "a pair proposed twice");
        assert!(found.iter().all(|(a, b)| a < b));
    }

    #[test]
    fn a_rare_shared_name_weighs_more_than_a_common_one() {
        let mut people: Vec<Person> = (0..200)
            .map(|i| person(&format!("Given{i}"), "Banda", "1980-01-01", "R/D/V1"))
            .collect();
        people.push(person("Zebedee", "Kachingwe", "1955-05-05", "R/D/V2"));
        people.push(person("Zebedee", "Kachingwe", "1955-05-05", "R/D/V2"));
        let prepared: Vec<Prepared> = people.iter().map(Prepared::new).collect();
        let model = model_of(&prepared);
        let freq = Frequencies::of(&prepared);
        let rare = tf_bits(&model, &freq, 1, "kachingwe");
        let common = tf_bits(&model, &freq, 1, "banda");
        // 2 in 202 against 200 in 202: log2(100) apart.
        assert!(
            (rare - common - 100f64.log2()).abs() < 1e-9,
            "rare {rare} common {common}"
        );
        let rare_pair = compare(&prepared[200], &prepared[201]);
        let common_pair = compare(&prepared[0], &prepared[1]);
        assert_eq!(
            (rare_pair.levels[1], common_pair.levels[1]),
            (Some(0), Some(0))
        );
    }

    #[test]
    fn a_national_id_alone_never_decides() {
        let mut a = person("Grace", "Banda", "1990-03-04", "R/D1/V1");
        let mut b = person("Yohane", "Phiri", "1961-06-06", "R/D2/V2");
        a.national_id = Some("MW123".into());
        b.national_id = Some("MW123".into());
        let prepared = vec![Prepared::new(&a), Prepared::new(&b)];
        let mut model = model_of(&prepared);
        // Even a model that trusts IDs completely.
        model.fields[7].m = vec![0.999_999, 0.000_001];
        model.fields[7].u = vec![0.000_001, 0.999_999];
        let c = compare(&prepared[0], &prepared[1]);
        assert_eq!(model.bits(7, 0), ID_WEIGHT_CAP);
        let freq = Frequencies::of(&prepared);
        assert!(probability(weight(&model, &freq, &prepared[0], &c)) < DEFAULT_THRESHOLD);
    }

    #[test]
    fn a_model_from_a_file_is_checked() {
        let prepared: Vec<Prepared> = vec![Prepared::new(&person("A", "B", "1990-01-01", "R/D/V"))];
        let mut model = estimate(&prepared, &[], &[], &Frequencies::of(&prepared), 1);
        model.check().unwrap();
        model.fields[2].m.pop();
        assert!(
            model
                .check()
                .unwrap_err()
                .to_string()
                .contains("BirthDate: 5 m values for 6 levels")
        );
        let mut model = estimate(&prepared, &[], &[], &Frequencies::of(&prepared), 1);
        model.fields.swap(0, 1);
        assert!(model.check().is_err());
        let mut model = estimate(&prepared, &[], &[], &Frequencies::of(&prepared), 1);
        model.prior = 1.0;
        assert!(model.check().is_err());
    }

    #[test]
    fn the_evidence_names_each_field_in_words() {
        let a = person("Hélène", "Banda", "1990-03-04", "R/D/V1");
        let b = person("Banda", "Helene", "1990-04-03", "R/D/V1");
        let (xa, xb) = (Prepared::new(&a), Prepared::new(&b));
        let prepared = vec![xa.clone(), xb.clone()];
        let model = model_of(&prepared);
        let freq = Frequencies::of(&prepared);
        let c = compare(&xa, &xb);
        let evidence = explain(&model, &freq, (&a, &xa), (&b, &xb), &c);
        assert_eq!(evidence.len(), FIELDS.len());
        assert!(
            evidence[0].finding.starts_with(
                "Hélène / Helene: the same once case, accents and script are set aside"
            ),
            "{}",
            evidence[0].finding
        );
        assert!(
            evidence[0]
                .finding
                .ends_with("(given and family names are swapped between the two records)")
        );
        assert_eq!(
            evidence[2].finding,
            "1990-03-04 / 1990-04-03: day and month swapped"
        );
        assert_eq!(evidence[2].level, "day_month_swapped");
        assert_eq!(evidence[6].level, "missing");
        assert_eq!(evidence[6].weight, 0.0);
        assert!(evidence[0].weight > 0.0 && evidence[4].weight > 0.0);
    }
}
