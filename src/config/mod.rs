//! The configuration loader: one TOML file (or the embedded default), overridden by
//! `OUTPOST_<SECTION>_<KEY>` environment variables and `<secret>_file` files, turned into typed
//! sections before anything starts.
//!
//! The loader knows no section. Each part owns its section (the struct, its defaults and its
//! `Section::validate`) beside the code that uses it; parts that belong together list their
//! sections in one `sections!` group (`sources::Sections`, `sinks::Sections`, the appliance's own
//! in `app::config`). The keys the groups declare drive environment overrides, secret files,
//! unknown-key errors and the documentation test. Errors name the key, and the line where the file
//! has one; the CLI exits with code 2.
//!
//! Never: prints a secret (`Secret`), or reads configuration anywhere but here.

mod host_port;
mod redact;
mod secret;

pub use host_port::HostPort;
pub use redact::Redactor;
pub use secret::Secret;

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Str,
    Int,
    Float,
    Bool,
    IntList,
    StrList,
    /// Never printed; may also be given as `<key>_file` naming a file that holds it.
    Secret,
}

/// `(section, key, type)`.
pub type Key = (&'static str, &'static str, KeyType);

/// One `[section]` of the file, owned by the part that uses it.
pub trait Section: serde::Serialize + serde::de::DeserializeOwned {
    /// Every key with its type (environment overrides are typed by it).
    const KEYS: &'static [(&'static str, KeyType)];

    /// What serde cannot check: ranges and combinations. Choices are enums, parsed by serde.
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }

    /// Values that are allowed but probably not meant (logged at start, printed by check-config).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A value a section refuses: the key (within the section) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Invalid { key, message: message.into() }
    }
}

/// `lo <= v <= hi` (and finite), else an `Invalid` for `key`.
pub fn range(key: &'static str, v: f64, lo: f64, hi: f64) -> Result<(), Invalid> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Invalid::new(key, format!("{v} is outside {lo}..={hi}")))
    }
}

/// An http(s) URL, else an `Invalid` for `key`.
pub fn http_url(key: &'static str, url: &str) -> Result<(), Invalid> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(Invalid::new(key, format!("{url:?} is not an http(s) URL"))),
    }
}

/// Sections that are read together; made by `sections!`.
pub trait Group: Sized + serde::Serialize + serde::de::DeserializeOwned {
    /// Appends every `(section, key, type)` of the group.
    fn keys(out: &mut Vec<Key>);
    /// Validates every section; `Err((dotted key, message))`.
    fn validate(&self) -> Result<(), (String, String)>;
    /// Every section's `Section::warnings`.
    fn warnings(&self) -> Vec<String>;
}

/// Declares a group of sections: a struct with one field per `[section]`, each defaulted, plus its
/// `Group` impl. The field name is the section name; adding a section is one line here.
macro_rules! sections {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        $vis struct $name {
            $( $(#[$fmeta])* #[serde(default = "crate::config::default_section")] pub $field: $ty, )*
        }

        impl crate::config::Group for $name {
            fn keys(out: &mut Vec<crate::config::Key>) {
                $( for (key, ty) in <$ty as crate::config::Section>::KEYS { out.push((stringify!($field), *key, *ty)); } )*
            }

            fn validate(&self) -> Result<(), (String, String)> {
                $(
                    crate::config::Section::validate(&self.$field)
                        .map_err(|i| (format!("{}.{}", stringify!($field), i.key), i.message))?;
                )*
                Ok(())
            }

            fn warnings(&self) -> Vec<String> {
                let mut out = Vec::new();
                $( out.extend(crate::config::Section::warnings(&self.$field)); )*
                out
            }
        }
    };
}
pub(crate) use sections;

/// A section with every key at its default (serde fills them from an empty table).
pub fn default_section<T: serde::de::DeserializeOwned>() -> T {
    // Every section's keys have defaults: the documentation test parses an empty file.
    toml::Table::new().try_into().expect("every key of a section has a default")
}

/// A configuration error: what is wrong, with which key, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: Option<String>,
    pub line: Option<usize>,
    pub source_name: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The file's text and the name errors use for it; `default` (embedded) when `path` is `None`.
pub fn read(path: Option<&Path>, default: &str) -> Result<(String, String), ConfigError> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                key: None,
                line: None,
                source_name: p.display().to_string(),
                message: format!("cannot read the file: {e}"),
            })?;
            Ok((text, p.display().to_string()))
        }
        None => Ok((default.to_owned(), "embedded default config".to_owned())),
    }
}

/// A parsed file with the environment and secret files applied, ready to be read by groups.
pub struct Loaded<'a> {
    text: &'a str,
    source_name: &'a str,
    table: toml::Table,
    /// `(dotted key, variable)` for values that came from the environment.
    from_env: Vec<(String, String)>,
    /// The dotted keys of every secret.
    secrets: Vec<String>,
}

impl<'a> Loaded<'a> {
    /// Parses `text`, refuses sections and top-level keys that `keys` does not know, applies
    /// `OUTPOST_*` variables from `env` and reads `<secret>_file` files.
    pub fn new(
        text: &'a str,
        source_name: &'a str,
        env: impl IntoIterator<Item = (String, String)>,
        keys: &[Key],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            key: None,
            line: e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)),
            source_name: source_name.to_owned(),
            message: e.message().trim().to_owned(),
        })?;
        let secrets = keys.iter().filter(|k| k.2 == KeyType::Secret).map(|(s, k, _)| format!("{s}.{k}")).collect();
        let mut loaded = Loaded { text, source_name, table: toml::Table::new(), from_env: Vec::new(), secrets };
        for (name, value) in table.iter() {
            if !keys.iter().any(|(section, _, _)| section == name) {
                let what = if value.is_table() { "section" } else { "key" };
                return Err(loaded.error(Some(name.clone()), format!("unknown {what} `{name}`")));
            }
        }
        for (name, value) in env {
            match apply_env(&mut table, &name, &value, keys) {
                Ok(Some(key)) => loaded.from_env.push((key, name)),
                Ok(None) => {}
                Err(m) => return Err(loaded.error(None, format!("{name}: {m}"))),
            }
        }
        resolve_secret_files(&mut table, keys).map_err(|(k, m)| loaded.error(Some(k), m))?;
        loaded.table = table;
        Ok(loaded)
    }

    /// Reads and validates one group of sections from the whole file.
    pub fn group<G: Group>(&self) -> Result<G, ConfigError> {
        let group: G = serde_path_to_error::deserialize(self.table.clone()).map_err(|e| {
            let path = e.path().to_string();
            // "kafka.brokers[1]" is reported as the key `kafka.brokers`; the message says which.
            let path = path.split('[').next().unwrap_or(&path).to_owned();
            let key = (path != ".").then_some(path);
            let mut message = e.inner().message().trim().to_owned();
            if let Some(secret) = key.as_ref().filter(|k| self.secrets.contains(k)) {
                // Never serde's own text: it would quote the value ("invalid type: integer `123456`").
                message = not_a_string(secret);
            }
            if let Some((_, var)) = self.from_env.iter().find(|(k, _)| Some(k) == key.as_ref()) {
                message = format!("{message} (value from {var})");
            }
            self.error(key, message)
        })?;
        group.validate().map_err(|(k, m)| self.error(Some(k), m))?;
        Ok(group)
    }

    pub fn error(&self, key: Option<String>, message: String) -> ConfigError {
        let line = key.as_deref().and_then(|k| line_of(self.text, k));
        ConfigError { key, line, source_name: self.source_name.to_owned(), message }
    }
}

/// Why a secret was refused, and the two other ways to give it; never the value.
fn not_a_string(dotted: &str) -> String {
    let (section, key) = dotted.split_once('.').unwrap_or(("", dotted));
    let var = format!("OUTPOST_{section}_{key}").to_ascii_uppercase();
    format!("{} (or use `{key}_file = \"PATH\"`, or the variable {var})", secret::NOT_A_STRING)
}

/// Applies one `OUTPOST_<SECTION>_<KEY>` variable; returns the dotted key it set, if any.
fn apply_env(table: &mut toml::Table, name: &str, raw: &str, keys: &[Key]) -> Result<Option<String>, String> {
    let Some(rest) = name.strip_prefix("OUTPOST_") else { return Ok(None) };
    let rest = rest.to_ascii_lowercase();
    let file_key = |k: &str| k.strip_suffix("_file").map(str::to_owned);
    for &(section, key, ty) in keys {
        let Some(k) = rest.strip_prefix(section).and_then(|r| r.strip_prefix('_')) else { continue };
        let (target, ty) = if k == key {
            (key.to_owned(), ty)
        } else if ty == KeyType::Secret && file_key(k).as_deref() == Some(key) {
            (k.to_owned(), KeyType::Str)
        } else {
            continue;
        };
        let value = typed_value(raw, ty)?;
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(sec) = entry else { return Err(format!("[{section}] in the file is not a table")) };
        sec.insert(target.clone(), value);
        return Ok(Some(format!("{section}.{target}")));
    }
    // Unknown OUTPOST_ variables are ignored on purpose: the environment has other users
    // (e.g. OUTPOST_LOG, or the test suite's own variables).
    Ok(None)
}

fn typed_value(raw: &str, ty: KeyType) -> Result<toml::Value, String> {
    let raw = raw.trim();
    let items =
        || raw.trim_start_matches('[').trim_end_matches(']').split(',').map(str::trim).filter(|s| !s.is_empty());
    Ok(match ty {
        KeyType::Str | KeyType::Secret => toml::Value::String(raw.to_owned()),
        KeyType::Int => toml::Value::Integer(raw.parse().map_err(|_| format!("{raw:?} is not an integer"))?),
        KeyType::Float => toml::Value::Float(raw.parse().map_err(|_| format!("{raw:?} is not a number"))?),
        KeyType::Bool => toml::Value::Boolean(raw.parse().map_err(|_| format!("{raw:?} is not true or false"))?),
        KeyType::StrList => {
            toml::Value::Array(items().map(|s| toml::Value::String(s.trim_matches('"').to_owned())).collect())
        }
        KeyType::IntList => toml::Value::Array(
            items()
                .map(|s| s.parse().map(toml::Value::Integer).map_err(|_| format!("{s:?} is not an integer")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Replaces `<secret>_file = "PATH"` with the file's (trimmed) contents under `<secret>`.
fn resolve_secret_files(table: &mut toml::Table, keys: &[Key]) -> Result<(), (String, String)> {
    for &(section, key, ty) in keys {
        if ty != KeyType::Secret {
            continue;
        }
        let Some(toml::Value::Table(sec)) = table.get_mut(section) else { continue };
        let file_key = format!("{key}_file");
        let Some(v) = sec.remove(&file_key) else { continue };
        let path = v.as_str().ok_or((format!("{section}.{file_key}"), "must be a path".to_owned()))?;
        let secret = std::fs::read_to_string(path)
            .map_err(|e| (format!("{section}.{file_key}"), format!("cannot read {path}: {}", e.kind())))?;
        sec.insert(key.to_owned(), toml::Value::String(secret.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(())
}

/// The 1-based line where `dotted` ("section.key" or "section") is set in `text`, if it is.
pub fn line_of(text: &str, dotted: &str) -> Option<usize> {
    let (section, key) = match dotted.split_once('.') {
        Some((s, k)) => (s, Some(k.split(['.', '[']).next().unwrap_or(k))),
        None => (dotted, None),
    };
    // A top-level key (before any [section]) is reported at its own line.
    if key.is_none() {
        let top = text.lines().take_while(|l| !l.trim_start().starts_with('['));
        if let Some(i) = top.into_iter().position(|l| l.split('=').next().map(str::trim) == Some(section)) {
            return Some(i + 1);
        }
    }
    let mut current = "";
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            current = h.trim();
            if key.is_none() && current == section {
                return Some(i + 1);
            }
            continue;
        }
        if let (Some(k), true) = (key, current == section)
            && t.split('=').next().map(str::trim) == Some(k)
        {
            return Some(i + 1);
        }
    }
    None
}
