//! Events as the log stores them: a stable type name, a schema version, and
//! a JSON payload. Older versions are upcast to the current shape on read,
//! so the log can outlive today's types.

/// An event read back from the log that cannot become a domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version} (current is {current})")]
    UnknownVersion {
        event_type: &'static str,
        version: u32,
        current: u32,
    },
    #[error("{event_type} v{version}: {message}")]
    Payload {
        event_type: &'static str,
        version: u32,
        message: String,
    },
}

/// What every aggregate's event enum offers the log.
pub trait EventCodec: Sized {
    /// The stable name of the event's type (`QuarantineStarted`).
    fn event_type(&self) -> &'static str;
    /// The schema version the payload is written in.
    fn schema_version(&self) -> u32;
    fn to_payload(&self) -> serde_json::Value;
    /// Reads a stored event, upcasting an older schema version.
    fn from_stored(
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError>;
    /// Reads a stored event without taking its payload: read models decode
    /// every event of the log, and a current-version payload needs no copy.
    fn from_stored_ref(
        event_type: &str,
        schema_version: u32,
        payload: &serde_json::Value,
    ) -> Result<Self, DecodeError>;
    /// Whether this enum knows the type name at all.
    fn knows(event_type: &str) -> bool;
}

/// The payload schema of every event type of one enum, for the contract.
#[cfg(feature = "openapi")]
pub trait EventSchemas {
    /// Pushes each type's schema (named as the type) and those it refers
    /// to onto `out`; answers each type's name and current schema version.
    fn event_schemas(
        out: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) -> Vec<(&'static str, u32)>;
}

/// Declares an aggregate's event enum, each variant wrapping the struct of
/// the same name, with its current schema version and, for types whose shape
/// changed, the function that lifts an older payload to the current one.
macro_rules! event_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($variant:ident : $version:literal $(=> $upcast:path)?),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $($variant($variant)),+
        }

        $(
            impl From<$variant> for $name {
                fn from(event: $variant) -> Self {
                    $name::$variant(event)
                }
            }
        )+

        #[cfg(feature = "openapi")]
        impl $crate::codec::EventSchemas for $name {
            fn event_schemas(
                out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>,
            ) -> Vec<(&'static str, u32)> {
                $(
                    out.push((
                        stringify!($variant).to_owned(),
                        <$variant as utoipa::PartialSchema>::schema(),
                    ));
                    <$variant as utoipa::ToSchema>::schemas(out);
                )+
                vec![$((stringify!($variant), $version)),+]
            }
        }

        impl $crate::codec::EventCodec for $name {
            fn event_type(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => stringify!($variant)),+
                }
            }

            fn schema_version(&self) -> u32 {
                match self {
                    $($name::$variant(_) => $version),+
                }
            }

            fn to_payload(&self) -> serde_json::Value {
                let rendered = match self {
                    $($name::$variant(event) => serde_json::to_value(event)),+
                };
                // Our own types always render: they hold no maps with
                // non-string keys and no non-finite floats.
                rendered.unwrap_or(serde_json::Value::Null)
            }

            fn from_stored(
                event_type: &str,
                schema_version: u32,
                payload: serde_json::Value,
            ) -> Result<Self, $crate::codec::DecodeError> {
                match event_type {
                    $(
                        stringify!($variant) => {
                            let name = stringify!($variant);
                            let payload = if schema_version == $version {
                                payload
                            } else {
                                $crate::codec::upcast_or_refuse!(
                                    name, $version, schema_version, payload $(, $upcast)?
                                )
                            };
                            serde_json::from_value::<$variant>(payload)
                                .map($name::$variant)
                                .map_err(|e| $crate::codec::DecodeError::Payload {
                                    event_type: name,
                                    version: schema_version,
                                    message: e.to_string(),
                                })
                        }
                    )+
                    other => Err($crate::codec::DecodeError::UnknownType(other.to_owned())),
                }
            }

            fn from_stored_ref(
                event_type: &str,
                schema_version: u32,
                payload: &serde_json::Value,
            ) -> Result<Self, $crate::codec::DecodeError> {
                use serde::Deserialize as _;
                match event_type {
                    $(
                        stringify!($variant) if schema_version == $version => {
                            $variant::deserialize(payload)
                                .map($name::$variant)
                                .map_err(|e| $crate::codec::DecodeError::Payload {
                                    event_type: stringify!($variant),
                                    version: schema_version,
                                    message: e.to_string(),
                                })
                        }
                    )+
                    _ => Self::from_stored(event_type, schema_version, payload.clone()),
                }
            }

            fn knows(event_type: &str) -> bool {
                matches!(event_type, $(stringify!($variant))|+)
            }
        }
    };
}

macro_rules! upcast_or_refuse {
    ($name:expr, $current:expr, $version:expr, $payload:expr) => {
        return Err($crate::codec::DecodeError::UnknownVersion {
            event_type: $name,
            version: $version,
            current: $current,
        })
    };
    ($name:expr, $current:expr, $version:expr, $payload:expr, $upcast:path) => {
        if $version > $current || $version == 0 {
            return Err($crate::codec::DecodeError::UnknownVersion {
                event_type: $name,
                version: $version,
                current: $current,
            });
        } else {
            $upcast($version, $payload).map_err(|message| $crate::codec::DecodeError::Payload {
                event_type: $name,
                version: $version,
                message,
            })?
        }
    };
}

pub(crate) use event_enum;
pub(crate) use upcast_or_refuse;
