//! What the contract says about every operation at once: the headers each
//! answer carries and the conditional reads, declared from the same rules
//! the middleware follows (`http::observe`, `http::conditional`), so a
//! generated client sees `ETag`, `X-Request-Id` and the rate limit on every
//! operation that sends them.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{
    HttpMethod, Object, OpenApi, RefOr, Required, ResponseBuilder, Schema, Type,
};

/// Types every event where events are returned: each event type's payload
/// schema comes from the domain type that defines it, and `LogEvent` and
/// `WrittenEvent` become a `oneOf` of one object per type, told apart by
/// `type` (a discriminator), so a generated client knows what `data` holds
/// for `QuarantineStarted`. Answers the names of schemas the domain would
/// have replaced with another of the same name (none, or the contract is
/// wrong: a test holds it to none).
pub(crate) fn declare_event_types(api: &mut OpenApi) -> Vec<String> {
    let mut payloads = Vec::new();
    let types = fangkong_domain::event_schemas(&mut payloads);
    let components = api.components.get_or_insert_with(Default::default);
    let mut clashes = Vec::new();
    for (name, schema) in payloads {
        match components.schemas.get(&name) {
            Some(kept) if kept != &schema => clashes.push(name),
            Some(_) => {}
            None => {
                components.schemas.insert(name, schema);
            }
        }
    }
    for (event_type, _) in &types {
        hide_secrets(event_type, components.schemas.get_mut(*event_type));
    }
    for envelope in ["LogEvent", "WrittenEvent", "StreamEvent"] {
        let Some(RefOr::T(Schema::Object(base))) = components.schemas.get(envelope).cloned() else {
            continue;
        };
        let mut one_of = utoipa::openapi::schema::OneOf::new();
        let mut discriminator = utoipa::openapi::schema::Discriminator::new("type");
        for (event_type, version) in &types {
            let mut variant = base.clone();
            variant.title = Some(format!("{envelope} {event_type}"));
            variant.properties.insert(
                "type".into(),
                RefOr::T(Schema::Object(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([*event_type]))
                        .build(),
                )),
            );
            let payload = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(*event_type));
            let data = if *version > 1 {
                // Stored events keep the shape they were written in.
                let mut any = utoipa::openapi::schema::AnyOf::new();
                any.items.push(payload);
                any.items.push(RefOr::T(Schema::Object(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::Object)
                        .description(Some(format!(
                            "As stored under an earlier `schema_version` (the current one is {version})"
                        )))
                        .build(),
                )));
                RefOr::T(Schema::AnyOf(any))
            } else {
                payload
            };
            variant.properties.insert("data".into(), data);
            let name = format!("{envelope}.{event_type}");
            discriminator.mapping.insert(
                (*event_type).to_owned(),
                format!("#/components/schemas/{name}"),
            );
            components
                .schemas
                .insert(name.clone(), RefOr::T(Schema::Object(variant)));
            one_of
                .items
                .push(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name)));
        }
        one_of.description = base.description.clone();
        one_of.discriminator = Some(discriminator);
        components
            .schemas
            .insert(envelope.into(), RefOr::T(Schema::OneOf(one_of)));
    }
    clashes
}

/// Secrets never leave the server (`fangkong_domain::personal`), so the
/// payload's schema does not name them.
fn hide_secrets(event_type: &str, schema: Option<&mut RefOr<Schema>>) {
    use fangkong_domain::personal::{fields_of, PersonalKind};
    let Some(RefOr::T(Schema::Object(object))) = schema else {
        return;
    };
    for field in fields_of(event_type) {
        if let (PersonalKind::Secret, [name]) = (field.kind, field.path) {
            object.properties.remove(*name);
            object.required.retain(|r| r != name);
        }
    }
}

/// The endless Server-Sent Events feeds, which a browser opens with a ticket.
pub const LIVE_FEEDS: &[&str] = &["/v1/events/live", "/v1/dashboard/live"];

/// Declares the headers and the `304` answers on every operation, and the
/// live feeds' second way in (a ticket).
pub(crate) fn declare_conventions(api: &mut OpenApi) {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "liveTicket",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "A ticket from `POST /v1/events/live/tickets` or `POST \
                 /v1/dashboard/live/tickets`: opens that live feed for a browser's \
                 EventSource, which cannot send Authorization",
            ))),
        );
    for path in LIVE_FEEDS {
        if let Some(feed) = api
            .paths
            .paths
            .get_mut(*path)
            .and_then(|item| item.get.as_mut())
        {
            feed.security = Some(vec![
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("liveTicket", Vec::<String>::new()),
            ]);
        }
    }
    for (path, item) in api.paths.paths.iter_mut() {
        for method in [
            HttpMethod::Get,
            HttpMethod::Post,
            HttpMethod::Put,
            HttpMethod::Delete,
        ] {
            let operation = match method {
                HttpMethod::Get => item.get.as_mut(),
                HttpMethod::Post => item.post.as_mut(),
                HttpMethod::Put => item.put.as_mut(),
                HttpMethod::Delete => item.delete.as_mut(),
                _ => None,
            };
            if let Some(operation) = operation {
                declare(path, &method, operation);
            }
        }
    }
}

fn text() -> RefOr<Schema> {
    RefOr::T(Schema::Object(Object::with_type(Type::String)))
}

fn integer() -> RefOr<Schema> {
    RefOr::T(Schema::Object(Object::with_type(Type::Integer)))
}

fn header(schema: RefOr<Schema>, description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(description))
        .build()
}

fn cache_control() -> utoipa::openapi::header::Header {
    header(
        text(),
        "`private, no-cache` for figures (revalidate with If-None-Match); `private, no-store` \
         for answers that may hold personal data",
    )
}

fn vary() -> utoipa::openapi::header::Header {
    header(
        text(),
        "`Authorization`: what an answer holds depends on the token",
    )
}

/// The `304` of a conditional read: the headers of the `200` it stands
/// for, without the body.
fn not_modified(authenticated: bool, projected: bool) -> RefOr<utoipa::openapi::Response> {
    let mut response = ResponseBuilder::new()
        .description("Not modified: `If-None-Match` named the current `ETag`")
        .header("ETag", header(text(), "The current tag"))
        .header("X-Request-Id", header(text(), "The request's id"))
        .header("Cache-Control", cache_control())
        .header("Vary", vary());
    if authenticated {
        for (name, description) in [
            ("RateLimit-Limit", "Requests the token may make per window"),
            ("RateLimit-Remaining", "Requests left in this window"),
            ("RateLimit-Reset", "Seconds until the window refills"),
        ] {
            response = response.header(name, header(integer(), description));
        }
    }
    if projected {
        response = response.header(
            "X-Projection-Position",
            header(integer(), "The log position the answer reflects"),
        );
    }
    RefOr::T(response.build())
}

fn declare(path: &str, method: &HttpMethod, operation: &mut Operation) {
    // `/metrics` takes a token unless it is served publicly.
    let authenticated = path.starts_with("/v1/") || path == "/metrics";
    let endless = LIVE_FEEDS.contains(&path);
    let read = matches!(method, HttpMethod::Get);
    let projected = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.name == "min_position");
    let conditional = read && !endless;
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        let headers = &mut response.headers;
        headers.insert(
            "X-Request-Id".into(),
            header(
                text(),
                "The request's id: the client's when it sent a sane one",
            ),
        );
        let success = status.starts_with('2');
        // Every answer after the token was admitted carries its bucket.
        if authenticated && status != "401" && status != "403" {
            for (name, description) in [
                ("RateLimit-Limit", "Requests the token may make per window"),
                ("RateLimit-Remaining", "Requests left in this window"),
                ("RateLimit-Reset", "Seconds until the window refills"),
            ] {
                headers.insert(name.into(), header(integer(), description));
            }
        }
        if matches!(status.as_str(), "429" | "503") {
            headers.insert(
                "Retry-After".into(),
                header(integer(), "Seconds to wait before trying again"),
            );
        }
        if conditional && status == "200" {
            headers.insert(
                "ETag".into(),
                header(
                    text(),
                    "A strong tag over the answer's bytes; for an entity, its version \
                     then a dot (`\"7.3f2a…\"`), and `If-Match` reads the version",
                ),
            );
            headers.insert("Cache-Control".into(), cache_control());
            headers.insert("Vary".into(), vary());
        }
        let written = response.content.values().any(
            |c| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Written")),
        );
        if !read && success && written {
            headers.insert(
                "ETag".into(),
                header(
                    text(),
                    "The entity's stream version after the write, quoted",
                ),
            );
        }
        if projected && success {
            headers.insert(
                "X-Projection-Position".into(),
                header(integer(), "The log position the answer reflects"),
            );
            headers.insert(
                "X-Projection-Wanted".into(),
                header(
                    integer(),
                    "The `min_position` asked for, when it was not reached in time",
                ),
            );
        }
    }
    if conditional {
        operation
            .responses
            .responses
            .insert("304".into(), not_modified(authenticated, projected));
        operation.parameters.get_or_insert_with(Vec::new).push(
            ParameterBuilder::new()
                .name("If-None-Match")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "An `ETag` from an earlier answer: `304` with no body when it is current",
                ))
                .schema(Some(text()))
                .build(),
        );
    }
}
