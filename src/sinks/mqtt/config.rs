//! `[mqtt]`: the MQTT sink (e.g. a Home Assistant broker); enabled when `url` is set.

use crate::config::{Invalid, KeyType, Secret, Section};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// mqtt://host:1883 or mqtts://host:8883
    pub url: Option<String>,
    #[serde(default = "d_topic_prefix")]
    pub topic_prefix: String,
    pub username: Option<String>,
    #[serde(default)]
    pub password: Secret,
    #[serde(default)]
    pub ha_discovery: bool,
}

fn d_topic_prefix() -> String {
    "outpost".into()
}

impl MqttConfig {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }
}

impl Section for MqttConfig {
    const KEYS: &'static [(&'static str, KeyType)] = &[
        ("url", KeyType::Str),
        ("topic_prefix", KeyType::Str),
        ("username", KeyType::Str),
        ("password", KeyType::Secret),
        ("ha_discovery", KeyType::Bool),
    ];

    fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.url {
            match reqwest::Url::parse(url) {
                Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                    return Err(Invalid::new("url", "must not carry credentials; use mqtt.username and mqtt.password"));
                }
                Ok(u) if matches!(u.scheme(), "mqtt" | "mqtts") && u.host_str().is_some() => {}
                _ => {
                    return Err(Invalid::new(
                        "url",
                        format!("{url:?} is not like mqtt://host:1883 or mqtts://host:8883"),
                    ));
                }
            }
        }
        if self.topic_prefix.is_empty() || self.topic_prefix.contains(['#', '+']) {
            return Err(Invalid::new("topic_prefix", "must be non-empty, without '#' or '+'"));
        }
        Ok(())
    }
}
