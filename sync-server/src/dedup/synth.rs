//! Labelled registries with the mistakes field registration makes, for the tests and the
//! benchmark: every record carries the id of the real person behind it, so precision and
//! recall can be counted.
//!
//! Households of Malawian, French, Arabic and Ethiopian names (the last two also written in
//! their own scripts), twins and namesakes in one village as the hard cases, then duplicates:
//! whole households registered twice, and people registered again with typos, keyboard and OCR
//! slips, another script, swapped names, short forms, a name added or dropped, the 1 January
//! default, day and month swapped, a digit off, a year off, no birthday, another phone, or
//! after moving to another household or village. Households share a phone, as they do. No
//! national IDs: matching must do without them.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::matching::Person;

/// A registry and, for each record, the person it really is.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub people: Vec<Person>,
    pub truth: Vec<u32>,
}

/// Precision and recall of the pairs found, against the labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub true_pairs: usize,
    pub found: usize,
    pub correct: usize,
}

impl Quality {
    pub fn precision(&self) -> f64 {
        if self.found == 0 {
            1.0
        } else {
            self.correct as f64 / self.found as f64
        }
    }

    pub fn recall(&self) -> f64 {
        if self.true_pairs == 0 {
            1.0
        } else {
            self.correct as f64 / self.true_pairs as f64
        }
    }
}

impl Labelled {
    /// Every pair of records that are one person, lower index first.
    pub fn true_pairs(&self) -> HashSet<(u32, u32)> {
        let mut by_person: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, t) in self.truth.iter().enumerate() {
            by_person.entry(*t).or_default().push(i as u32);
        }
        let mut out = HashSet::new();
        for records in by_person.values() {
            for (x, a) in records.iter().enumerate() {
                for b in &records[x + 1..] {
                    out.insert((*a.min(b), *a.max(b)));
                }
            }
        }
        out
    }

    pub fn quality(&self, found: impl IntoIterator<Item = (u32, u32)>) -> Quality {
        let truth = self.true_pairs();
        let mut q = Quality {
            true_pairs: truth.len(),
            found: 0,
            correct: 0,
        };
        for (a, b) in found {
            q.found += 1;
            if truth.contains(&(a.min(b), a.max(b))) {
                q.correct += 1;
            }
        }
        q
    }
}

struct Culture {
    male: &'static [&'static str],
    female: &'static [&'static str],
    family: &'static [&'static str],
    /// The same names in their own script, where the culture has one.
    script: &'static [(&'static str, &'static str)],
    /// How often a wife keeps her own family name.
    own_name: f64,
}

const MALAWIAN: Culture = Culture {
    male: &[
        "Chikondi",
        "Chisomo",
        "Mphatso",
        "Kondwani",
        "Limbani",
        "Thokozani",
        "Dalitso",
        "Yamikani",
        "Chifundo",
        "Joseph",
        "James",
        "John",
        "Peter",
        "Yohane",
        "Innocent",
        "Gift",
        "Wongani",
        "Khumbo",
        "Mwayi",
        "Pempho",
        "Blessings",
        "Madalitso",
        "Fatsani",
        "Tawonga",
        "Lusungu",
        "Mavuto",
        "Kumbukani",
        "Mcdonald",
        "Daniel",
        "Samuel",
        "William",
        "Robert",
        "Charles",
        "Thomas",
        "Benjamin",
        "Edward",
        "Richard",
        "Alexander",
        "Moses",
        "Elias",
    ],
    female: &[
        "Chimwemwe",
        "Tiyamike",
        "Takondwa",
        "Tamanda",
        "Tadala",
        "Kettie",
        "Grace",
        "Esther",
        "Mary",
        "Mercy",
        "Agnes",
        "Memory",
        "Patience",
        "Precious",
        "Loveness",
        "Sungeni",
        "Tionge",
        "Thandiwe",
        "Chisomo",
        "Madalo",
        "Towera",
        "Temwa",
        "Elizabeth",
        "Margaret",
        "Catherine",
        "Patricia",
        "Rebecca",
        "Christine",
        "Ruth",
        "Eneless",
        "Alinafe",
        "Lucia",
        "Edina",
        "Felista",
        "Jean",
        "Dorothy",
    ],
    family: &[
        "Banda",
        "Phiri",
        "Mwale",
        "Tembo",
        "Zulu",
        "Chirwa",
        "Nyirenda",
        "Kumwenda",
        "Mbewe",
        "Gondwe",
        "Mhango",
        "Kachingwe",
        "Chavula",
        "Msiska",
        "Munthali",
        "Kamanga",
        "Mvula",
        "Nkhoma",
        "Chikopa",
        "Jere",
        "Kaunda",
        "Lungu",
        "Mkandawire",
        "Mtambo",
        "Ngwira",
        "Nyasulu",
        "Sakala",
        "Soko",
        "Zimba",
        "Chibwe",
        "Kalua",
        "Moyo",
        "Chisale",
        "Kapito",
        "Mussa",
        "Salima",
        "Chinsinga",
        "Malunga",
        "Kachali",
        "Mponda",
        "Chimombo",
        "Kanyenda",
        "Mkwapatira",
        "Chiumia",
        "Nthala",
        "Kayira",
        "Ndovi",
        "Chaponda",
        "Mzembe",
        "Luhanga",
    ],
    script: &[],
    own_name: 0.6,
};

const FRENCH: Culture = Culture {
    male: &[
        "Jérôme",
        "François",
        "Noël",
        "Éric",
        "André",
        "Thierry",
        "Benoît",
        "Hervé",
        "Gaël",
        "Loïc",
        "Jean",
        "Pierre",
        "Étienne",
        "Raphaël",
        "Clément",
    ],
    female: &[
        "Hélène",
        "Amélie",
        "Zoé",
        "Agnès",
        "Cécile",
        "Thérèse",
        "Élodie",
        "Mélanie",
        "Anaïs",
        "Geneviève",
        "Marie",
        "Noémie",
        "Chloé",
        "Inès",
        "Léa",
    ],
    family: &[
        "Lefèvre",
        "Girard",
        "Bérenger",
        "Mercier",
        "Dubois",
        "Lemaître",
        "Fontaine",
        "Chevalier",
        "Rousseau",
        "Gaultier",
        "Béranger",
        "Faure",
        "Moreau",
        "Lambert",
        "Bonnet",
        "Perrin",
    ],
    script: &[],
    own_name: 0.1,
};

const ARABIC: Culture = Culture {
    male: &[
        "Mohammed", "Ahmed", "Hassan", "Ali", "Omar", "Yusuf", "Ibrahim", "Khalid", "Mustafa",
        "Tariq", "Karim", "Samir", "Nabil", "Jamal", "Rashid",
    ],
    female: &[
        "Fatima", "Aisha", "Khadija", "Mariam", "Zainab", "Amina", "Layla", "Salma", "Huda",
        "Nadia", "Rania", "Samira", "Yasmin", "Hana", "Leila",
    ],
    family: &[
        "Haddad", "Mansour", "Saleh", "Nasser", "Khalil", "Hamdan", "Qasim", "Farouk", "Jaber",
        "Darwish", "Hashem", "Barakat", "Sabbagh", "Zaki", "Taha",
    ],
    script: &[
        ("Mohammed", "محمد"),
        ("Ahmed", "أحمد"),
        ("Hassan", "حسن"),
        ("Ali", "علي"),
        ("Omar", "عمر"),
        ("Yusuf", "يوسف"),
        ("Ibrahim", "ابراهيم"),
        ("Khalid", "خالد"),
        ("Mustafa", "مصطفى"),
        ("Karim", "كريم"),
        ("Samir", "سمير"),
        ("Jamal", "جمال"),
        ("Fatima", "فاطمة"),
        ("Aisha", "عائشة"),
        ("Khadija", "خديجة"),
        ("Mariam", "مريم"),
        ("Zainab", "زينب"),
        ("Amina", "أمينة"),
        ("Layla", "ليلى"),
        ("Salma", "سلمى"),
        ("Nadia", "نادية"),
        ("Haddad", "حداد"),
        ("Mansour", "منصور"),
        ("Saleh", "صالح"),
        ("Nasser", "ناصر"),
        ("Khalil", "خليل"),
        ("Hamdan", "حمدان"),
        ("Qasim", "قاسم"),
        ("Jaber", "جابر"),
        ("Darwish", "درويش"),
        ("Barakat", "بركات"),
        ("Taha", "طه"),
    ],
    own_name: 0.9,
};

const ETHIOPIAN: Culture = Culture {
    male: &[
        "Abebe", "Kebede", "Tesfaye", "Haile", "Mulugeta", "Bekele", "Girma", "Tadesse", "Alemu",
        "Getachew", "Dawit", "Yonas", "Solomon", "Mesfin", "Tekle",
    ],
    female: &[
        "Almaz", "Tigist", "Selam", "Meseret", "Hiwot", "Birtukan", "Genet", "Aster", "Mulu",
        "Tsehay", "Yeshi", "Zewditu", "Saba", "Rahel", "Lidya",
    ],
    family: &[
        "Abebe", "Kebede", "Tesfaye", "Haile", "Mulugeta", "Bekele", "Girma", "Tadesse", "Alemu",
        "Getachew", "Wolde", "Desta", "Mengistu", "Ayele", "Negash",
    ],
    script: &[
        ("Abebe", "አበበ"),
        ("Kebede", "ከበደ"),
        ("Tesfaye", "ተስፋዬ"),
        ("Haile", "ኃይሌ"),
        ("Mulugeta", "ሙሉጌታ"),
        ("Bekele", "በቀለ"),
        ("Girma", "ግርማ"),
        ("Tadesse", "ታደሰ"),
        ("Alemu", "አለሙ"),
        ("Getachew", "ጌታቸው"),
        ("Dawit", "ዳዊት"),
        ("Solomon", "ሰለሞን"),
        ("Almaz", "አልማዝ"),
        ("Tigist", "ትዕግስት"),
        ("Selam", "ሰላም"),
        ("Meseret", "መሰረት"),
        ("Hiwot", "ሕይወት"),
        ("Genet", "ገነት"),
        ("Aster", "አስቴር"),
        ("Mulu", "ሙሉ"),
        ("Wolde", "ወልዴ"),
        ("Desta", "ደስታ"),
        ("Ayele", "አየለ"),
        ("Negash", "ነጋሽ"),
    ],
    own_name: 1.0,
};

const SHORT: &[(&str, &str)] = &[
    ("William", "Bill"),
    ("Elizabeth", "Liz"),
    ("Robert", "Bob"),
    ("Margaret", "Maggie"),
    ("Catherine", "Kate"),
    ("Patricia", "Patty"),
    ("Joseph", "Joe"),
    ("James", "Jim"),
    ("Charles", "Charlie"),
    ("Thomas", "Tom"),
    ("Christine", "Chris"),
    ("Mohammed", "Mo"),
    ("Alexander", "Alex"),
    ("Rebecca", "Becky"),
    ("Benjamin", "Ben"),
    ("Samuel", "Sam"),
    ("Daniel", "Dan"),
    ("Edward", "Ted"),
    ("Richard", "Dick"),
    ("Jean", "Jeannot"),
    ("Marie", "Mimi"),
];

/// Neighbouring keys on a QWERTY keyboard, for slips of the finger.
const KEYBOARD: &[&str] = &["qwertyuiop", "asdfghjkl", "zxcvbnm"];

/// What a scanner misreads.
const OCR: &[(&str, &str)] = &[
    ("m", "rn"),
    ("rn", "m"),
    ("d", "cl"),
    ("h", "li"),
    ("e", "c"),
    ("o", "0"),
    ("l", "1"),
    ("i", "l"),
    ("u", "v"),
    ("a", "o"),
    ("n", "ri"),
];

struct Household {
    code: String,
    village: String,
    members: Vec<usize>,
}

fn pick<'a, R: Rng>(rng: &mut R, from: &'a [&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// A culture's names: the real ones first, then (for Malawian names) made-up ones from
/// Chichewa-like syllables, so a million people have the long tail of names a country has.
/// Drawn skewed to the head, as names are: a few very common, most rare.
struct Pools {
    male: Vec<String>,
    female: Vec<String>,
    family: Vec<String>,
}

const GIVEN_STARTS: &[&str] = &[
    "Chi", "Ma", "Tha", "Ka", "Mwa", "Ta", "Li", "Ye", "Ku", "Mphi", "Nya", "Ti", "Da", "Wo", "Lu",
    "Ba", "Ze", "Fu", "Mte", "Nji", "Pi", "Sa", "Ga", "Ho", "Va",
];
const GIVEN_ENDS: &[&str] = &[
    "kondi", "somo", "mwemwe", "yamike", "ndiwe", "tsani", "mbani", "lisa", "dalo", "wonga",
    "fundo", "kumbu", "sungu", "yanjo", "panga", "tende", "golo", "weza", "bvuto", "dira",
];
const FAMILY_STARTS: &[&str] = &[
    "M", "Ch", "K", "Ny", "Mk", "Ng", "Ph", "Mw", "Ts", "Ms", "B", "J", "L", "S", "Z",
];
const FAMILY_ENDS: &[&str] = &[
    "anda", "wale", "embo", "irwa", "umwenda", "ondwe", "ango", "avula", "unthali", "iska", "ale",
    "ungu", "ala", "ere", "ombo", "enje", "ula", "apito", "inga", "aye", "ikwa", "onda", "usi",
];

impl Pools {
    fn of(culture: &Culture) -> Pools {
        let owned = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut pools = Pools {
            male: owned(culture.male),
            female: owned(culture.female),
            family: owned(culture.family),
        };
        if std::ptr::eq(culture, &MALAWIAN) {
            for (i, start) in GIVEN_STARTS.iter().enumerate() {
                for (j, end) in GIVEN_ENDS.iter().enumerate() {
                    let name = format!("{start}{end}");
                    if (i + j) % 2 == 0 {
                        &mut pools.male
                    } else {
                        &mut pools.female
                    }
                    .push(name);
                }
            }
            for start in FAMILY_STARTS {
                for end in FAMILY_ENDS {
                    pools.family.push(format!("{start}{end}"));
                }
            }
        }
        pools
    }
}

fn draw<'a, R: Rng>(rng: &mut R, from: &'a [String]) -> &'a str {
    let skewed = rng.random::<f64>().powf(1.5);
    &from[((from.len() as f64 * skewed) as usize).min(from.len() - 1)]
}

fn date<R: Rng>(rng: &mut R, from_year: i32, to_year: i32) -> NaiveDate {
    let year = rng.random_range(from_year..=to_year.max(from_year));
    NaiveDate::from_yo_opt(year, rng.random_range(1..=365)).expect("a day of the year")
}

/// A registry of about `households` households (some 4.7 records each, in districts of 20
/// villages of some 500 people), a `duplicate_share` of whose people are registered more
/// than once.
pub fn registry(seed: u64, households: usize, duplicate_share: f64) -> Labelled {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut people: Vec<Person> = Vec::new();
    let mut truth: Vec<u32> = Vec::new();
    let mut homes: Vec<Household> = Vec::new();
    let districts = (households / 2_000).max(10);
    let villages: Vec<String> = (0..districts)
        .flat_map(|d| (0..20).map(move |v| format!("R1/D{d:03}/V{d:03}{v:02}")))
        .collect();
    let pools: Vec<(&Culture, Pools)> = [&FRENCH, &ARABIC, &ETHIOPIAN, &MALAWIAN]
        .into_iter()
        .map(|c| (c, Pools::of(c)))
        .collect();
    let mut next_person = 0u32;
    for h in 0..households {
        let (culture, names) = &pools[match rng.random_range(0..10) {
            0 => 0,
            1 => 1,
            2 => 2,
            _ => 3,
        }];
        let in_script = |rng: &mut ChaCha8Rng, name: &str| -> String {
            match culture.script.iter().find(|(latin, _)| *latin == name) {
                Some((_, native)) if rng.random_bool(0.3) => (*native).to_owned(),
                _ => name.to_owned(),
            }
        };
        let village = villages[rng.random_range(0..villages.len())].clone();
        let code = format!("HH{h:07}");
        let family = draw(&mut rng, &names.family).to_owned();
        let head_male = rng.random_bool(0.7);
        let head_born = date(&mut rng, 1950, 2002);
        let mut members = Vec::new();
        // Half the households have a phone, which most of their members give as theirs.
        let home_phone = rng
            .random_bool(0.5)
            .then(|| format!("+265 99{:07}", rng.random_range(0..10_000_000)));
        let mut add = |rng: &mut ChaCha8Rng,
                       given: &str,
                       family: &str,
                       sex: char,
                       dob: NaiveDate,
                       people: &mut Vec<Person>| {
            let index = people.len();
            people.push(Person {
                external_id: format!("P{index:08}"),
                given_name: in_script(rng, given),
                family_name: in_script(rng, family),
                dob: Some(dob),
                sex: Some(sex),
                village: Some(village.clone()),
                household: Some(code.clone()),
                household_members: vec![],
                phone: match &home_phone {
                    Some(phone) if rng.random_bool(0.7) => Some(phone.clone()),
                    _ => rng
                        .random_bool(0.2)
                        .then(|| format!("+265 88{:07}", rng.random_range(0..10_000_000))),
                },
                national_id: None,
            });
            truth.push(next_person);
            next_person += 1;
            members.push(index);
        };
        let sex = |male: bool| if male { 'M' } else { 'F' };
        let head_given = draw(
            &mut rng,
            if head_male {
                &names.male
            } else {
                &names.female
            },
        )
        .to_owned();
        add(
            &mut rng,
            &head_given,
            &family,
            sex(head_male),
            head_born,
            &mut people,
        );
        if rng.random_bool(0.75) {
            let spouse_family = if rng.random_bool(culture.own_name) {
                draw(&mut rng, &names.family).to_owned()
            } else {
                family.clone()
            };
            let spouse = draw(
                &mut rng,
                if head_male {
                    &names.female
                } else {
                    &names.male
                },
            )
            .to_owned();
            let born = date(&mut rng, head_born.year() - 8, head_born.year() + 6);
            add(
                &mut rng,
                &spouse,
                &spouse_family,
                sex(!head_male),
                born,
                &mut people,
            );
        }
        let children = rng.random_range(0..=5);
        let mut given_so_far: Vec<String> = vec![head_given];
        let mut last_born = None;
        for _ in 0..children {
            let male = rng.random_bool(0.5);
            // Siblings have different given names; twins share a birthday.
            let mut given = String::new();
            for _ in 0..100 {
                given = draw(&mut rng, if male { &names.male } else { &names.female }).to_owned();
                // Siblings are given clearly different names (the made-up names differ by a
                // syllable, which parents do not choose between children).
                if given_so_far
                    .iter()
                    .all(|g| strsim::jaro_winkler(g, &given) < 0.85)
                {
                    break;
                }
            }
            // A pool too small for clearly different names still never repeats one.
            if given_so_far.contains(&given) {
                continue;
            }
            given_so_far.push(given.clone());
            let born = match last_born {
                Some(d) if rng.random_bool(0.02) => d,
                _ => date(
                    &mut rng,
                    head_born.year() + 18,
                    (head_born.year() + 45).min(2025),
                ),
            };
            last_born = Some(born);
            add(&mut rng, &given, &family, sex(male), born, &mut people);
        }
        homes.push(Household {
            code,
            village,
            members,
        });
    }

    // Whole households registered twice (four in ten of the duplicates), the copies with
    // fewer mistakes; then single people registered again.
    let originals = people.len();
    let mut copied = 0usize;
    let whole = ((originals as f64 * duplicate_share * 0.4) as usize).min(originals);
    let mut order: Vec<usize> = (0..homes.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    for home in order {
        if copied >= whole {
            break;
        }
        let code = format!("{}D", homes[home].code);
        let mut members = Vec::new();
        for &m in &homes[home].members.clone() {
            let mut copy = people[m].clone();
            copy.household = Some(code.clone());
            let mistakes = rng.random_range(0..=2);
            for _ in 0..mistakes {
                mistake(&mut rng, &mut copy, &villages);
            }
            copy.external_id = format!("P{:08}", people.len());
            members.push(people.len());
            truth.push(truth[m]);
            people.push(copy);
            copied += 1;
        }
        homes.push(Household {
            code,
            village: homes[home].village.clone(),
            members,
        });
    }
    let wanted = (originals as f64 * duplicate_share) as usize;
    let singles = wanted - copied.min(wanted);
    let mut home_of: HashMap<String, usize> = HashMap::new();
    let mut by_district: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, home) in homes.iter().enumerate() {
        home_of.insert(home.code.clone(), i);
        let district = home.village.rsplit_once('/').map_or("", |(d, _)| d);
        by_district.entry(district.to_owned()).or_default().push(i);
    }
    for _ in 0..singles {
        let original = rng.random_range(0..originals);
        let mut copy = people[original].clone();
        let mistakes = match rng.random_range(0..20) {
            0..10 => 1,
            10..17 => 2,
            _ => 3,
        };
        for _ in 0..mistakes {
            mistake(&mut rng, &mut copy, &villages);
        }
        // Half the people registered again have moved to another household of the district.
        let district = copy
            .village
            .as_deref()
            .and_then(|v| v.rsplit_once('/'))
            .map_or("", |(d, _)| d);
        let home = match by_district.get(district) {
            Some(nearby) if rng.random_bool(0.5) => nearby[rng.random_range(0..nearby.len())],
            _ => {
                home_of[people[original]
                    .household
                    .as_ref()
                    .expect("every person has a household")]
            }
        };
        copy.household = Some(homes[home].code.clone());
        copy.village = Some(homes[home].village.clone());
        copy.external_id = format!("P{:08}", people.len());
        homes[home].members.push(people.len());
        truth.push(truth[original]);
        people.push(copy);
    }

    for home in &homes {
        for &m in &home.members {
            people[m].household_members = home
                .members
                .iter()
                .filter(|&&o| o != m)
                .map(|&o| format!("{} {}", people[o].given_name, people[o].family_name))
                .collect();
        }
    }
    Labelled { people, truth }
}

fn typo<R: Rng>(rng: &mut R, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_owned();
    }
    let at = rng.random_range(1..chars.len());
    match rng.random_range(0..4) {
        0 => {
            chars.remove(at);
        }
        1 => chars.insert(at, chars[at - 1]),
        2 => chars.swap(at - 1, at),
        _ => chars[at] = (b'a' + rng.random_range(0..26u8)) as char,
    }
    chars.into_iter().collect()
}

fn keyboard_slip<R: Rng>(rng: &mut R, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let at = rng.random_range(0..chars.len().max(1));
    let mut out = chars.clone();
    if let Some(c) = chars.get(at) {
        let lower = c.to_ascii_lowercase();
        if let Some(row) = KEYBOARD.iter().find(|r| r.contains(lower)) {
            let i = row.find(lower).expect("found") as isize;
            let j = if i == 0 || (rng.random_bool(0.5) && (i as usize) < row.len() - 1) {
                i + 1
            } else {
                i - 1
            };
            let mut next = row.as_bytes()[j as usize] as char;
            if c.is_uppercase() {
                next = next.to_ascii_uppercase();
            }
            out[at] = next;
        }
    }
    out.into_iter().collect()
}

fn ocr_slip<R: Rng>(rng: &mut R, s: &str) -> String {
    // Never the first letter (a scanner reads capitals well).
    let skip = s.char_indices().nth(1).map_or(s.len(), |(i, _)| i);
    let options: Vec<&(&str, &str)> = OCR
        .iter()
        .filter(|(from, _)| s[skip..].contains(from))
        .collect();
    match options.get(rng.random_range(0..options.len().max(1))) {
        Some((from, to)) => {
            let at = s[skip..].find(from).expect("found") + skip;
            format!("{}{}{}", &s[..at], to, &s[at + from.len()..])
        }
        None => typo(rng, s),
    }
}

fn native(name: &str) -> Option<&'static str> {
    [ARABIC.script, ETHIOPIAN.script]
        .iter()
        .flat_map(|s| s.iter())
        .find(|(latin, _)| *latin == name)
        .map(|(_, n)| *n)
}

fn latin(name: &str) -> Option<&'static str> {
    [ARABIC.script, ETHIOPIAN.script]
        .iter()
        .flat_map(|s| s.iter())
        .find(|(_, n)| *n == name)
        .map(|(l, _)| *l)
}

fn strip_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'É' => 'E',
            'à' | 'â' => 'a',
            'ï' | 'î' => 'i',
            'ô' => 'o',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// One mistake of those field registration makes, retried until it changes the record (a
/// day and month swap is impossible after the 12th, a short name takes no typo, ...), so a
/// record labelled as carrying a mistake does.
fn mistake<R: Rng>(rng: &mut R, p: &mut Person, villages: &[String]) {
    for _ in 0..20 {
        let before = p.clone();
        one_mistake(rng, p, villages);
        if *p != before {
            return;
        }
    }
}

fn one_mistake<R: Rng>(rng: &mut R, p: &mut Person, villages: &[String]) {
    let given = rng.random_bool(0.5);
    let name = if given {
        p.given_name.clone()
    } else {
        p.family_name.clone()
    };
    let is_latin = name.is_ascii() || latin(&name).is_none();
    let set = |p: &mut Person, v: String| {
        if given {
            p.given_name = v
        } else {
            p.family_name = v
        }
    };
    match rng.random_range(0..100) {
        0..16 if is_latin => set(p, typo(rng, &name)),
        16..24 if is_latin => set(p, keyboard_slip(rng, &name)),
        24..32 if is_latin => set(p, ocr_slip(rng, &name)),
        32..42 => match (native(&name), latin(&name)) {
            (Some(n), _) => set(p, n.to_owned()),
            (_, Some(l)) => set(p, l.to_owned()),
            _ => set(p, strip_accents(&name)),
        },
        42..48 => std::mem::swap(&mut p.given_name, &mut p.family_name),
        48..54 => {
            if let Some((long, short)) = SHORT
                .iter()
                .find(|(l, s)| *l == p.given_name || *s == p.given_name)
            {
                p.given_name = if p.given_name == *long { short } else { long }.to_string();
            } else {
                p.given_name = typo(rng, &p.given_name);
            }
        }
        54..58 => {
            if let Some((first, _)) = p.given_name.split_once(' ') {
                p.given_name = first.to_owned();
            } else {
                p.given_name = format!("{} {}", p.given_name, pick(rng, MALAWIAN.female));
            }
        }
        58..65 => p.dob = p.dob.and_then(|d| NaiveDate::from_ymd_opt(d.year(), 1, 1)),
        65..70 => {
            p.dob = p
                .dob
                .map(|d| NaiveDate::from_ymd_opt(d.year(), d.day(), d.month()).unwrap_or(d));
        }
        70..76 => {
            p.dob = p.dob.map(|d| {
                let s = d.format("%Y%m%d").to_string().into_bytes();
                let at = rng.random_range(2..8);
                let mut t = s.clone();
                t[at] = b'0' + rng.random_range(0..10u8);
                NaiveDate::parse_from_str(std::str::from_utf8(&t).expect("digits"), "%Y%m%d")
                    .unwrap_or(d)
            })
        }
        76..82 => {
            p.dob = p
                .dob
                .and_then(|d| d.with_year(d.year() + if rng.random_bool(0.5) { 1 } else { -1 }));
        }
        82..85 => p.dob = None,
        85..92 => {
            // Another village of the same district.
            if let Some((district, _)) = p
                .village
                .clone()
                .as_deref()
                .and_then(|v| v.rsplit_once('/'))
            {
                let nearby: Vec<&String> = villages
                    .iter()
                    .filter(|v| {
                        v.starts_with(&format!("{district}/")) && Some(*v) != p.village.as_ref()
                    })
                    .collect();
                p.village = Some(nearby[rng.random_range(0..nearby.len())].clone());
            }
        }
        92..94 => p.sex = None,
        // Another phone, or none given this time.
        94..96 => {
            p.phone = rng
                .random_bool(0.5)
                .then(|| format!("+265 77{:07}", rng.random_range(0..10_000_000)))
        }
        _ if is_latin => set(p, typo(rng, &name)),
        // A name in Arabic or Ethiopic script is mistaken by writing it the other way.
        _ => {
            if let Some(l) = latin(&name) {
                set(p, l.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_labelled_and_reproducible() {
        let a = registry(3, 200, 0.1);
        let b = registry(3, 200, 0.1);
        assert_eq!(a.people, b.people);
        assert_eq!(a.people.len(), a.truth.len());
        let originals = a.truth.iter().copied().collect::<HashSet<_>>().len();
        let duplicates = a.people.len() - originals;
        assert!(
            (duplicates as f64 - originals as f64 * 0.1).abs() <= 8.0,
            "{duplicates} of {originals}"
        );
        assert!(!a.true_pairs().is_empty());
        // External ids are unique, as in a registry.
        assert_eq!(
            a.people
                .iter()
                .map(|p| &p.external_id)
                .collect::<HashSet<_>>()
                .len(),
            a.people.len()
        );
        // Some names are written in Arabic or Ethiopic script.
        assert!(
            a.people
                .iter()
                .any(|p| !p.given_name.is_ascii() && latin(&p.given_name).is_some())
        );
    }

    #[test]
    fn quality_counts_against_the_labels() {
        let l = Labelled {
            people: vec![Person::default(); 4],
            truth: vec![0, 0, 1, 1],
        };
        let q = l.quality([(0, 1), (2, 1)]);
        assert_eq!((q.true_pairs, q.found, q.correct), (2, 2, 1));
        assert_eq!((q.precision(), q.recall()), (0.5, 0.5));
    }
}
