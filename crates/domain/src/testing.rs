//! Given/When/Then for aggregates: given a history, when a command is
//! handled, then these events (or this broken rule).

use crate::{Aggregate, Context, DomainError, EventCodec};

pub(crate) struct Given<A: Aggregate> {
    state: A,
    context: Context,
}

pub(crate) fn given<A: Aggregate>(history: &[A::Event], context: Context) -> Given<A> {
    Given {
        state: A::fold(history),
        context,
    }
}

impl<A: Aggregate> Given<A> {
    pub(crate) fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.handle(&command, &self.context);
        Then {
            state: self.state,
            result,
        }
    }
}

pub(crate) struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Then<A> {
    /// The events, after checking each survives the log's encoding.
    #[track_caller]
    fn recorded(self) -> (A, Vec<A::Event>) {
        let events = match self.result {
            Ok(events) => events,
            Err(e) => panic!("expected events, the command failed: {e} ({})", e.code()),
        };
        for event in &events {
            let back = A::Event::from_stored(
                event.event_type(),
                event.schema_version(),
                event.to_payload(),
            )
            .expect("a recorded event decodes");
            assert_eq!(&back, event, "round trip of {}", event.event_type());
        }
        (self.state, events)
    }

    /// The command yields exactly these events. Returns the state after them.
    #[track_caller]
    pub(crate) fn then(self, expected: &[A::Event]) -> A {
        let (state, events) = self.recorded();
        assert_eq!(events, expected);
        events.iter().fold(state, |s, e| s.apply(e))
    }

    /// The command yields events of these types, in this order.
    #[track_caller]
    pub(crate) fn then_types(self, expected: &[&str]) -> A {
        let (state, events) = self.recorded();
        let types: Vec<_> = events.iter().map(|e| e.event_type()).collect();
        assert_eq!(types, expected);
        events.iter().fold(state, |s, e| s.apply(e))
    }

    /// The command breaks the rule with this code.
    #[track_caller]
    pub(crate) fn then_rejects(self, code: &str) {
        match self.result {
            Ok(events) => panic!("expected {code}, got events {events:?}"),
            Err(e) => assert_eq!(e.code(), code, "{e}"),
        }
    }
}

pub(crate) fn day(s: &str) -> crate::LocalDate {
    s.parse().expect("a test date")
}

pub(crate) fn name(s: &str) -> crate::Name {
    crate::Name::parse(s).expect("a test name")
}

pub(crate) fn temp(c: f64) -> crate::Temperature {
    crate::Temperature::parse(c).expect("a test temperature")
}

/// Runs `commands` in order, each on its day, and checks what the log
/// must give back: the state rebuilt from the events *as stored* (their
/// JSON, decoded again) is the state the decisions reached, after every
/// command; and deciding each command again on the rebuilt state gives the
/// same answer. A field the encoding drops or an upcast that changes a
/// meaning makes this fail.
pub(crate) fn assert_stored_history_rebuilds_the_state<A: Aggregate>(
    commands: &[(A::Command, Context)],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let mut state = A::default();
    let mut stored = Vec::new();
    for (command, ctx) in commands {
        let rebuilt = stored.iter().try_fold(
            A::default(),
            |s, (t, v, p): &(String, u32, serde_json::Value)| {
                A::Event::from_stored(t, *v, p.clone()).map(|e| s.apply(&e))
            },
        );
        proptest::prop_assert_eq!(rebuilt.as_ref(), Ok(&state));
        let decided = state.handle(command, ctx);
        let again = rebuilt.map(|r| r.handle(command, ctx)).ok();
        proptest::prop_assert_eq!(
            decided.as_ref().map_err(|e| e.code()),
            again
                .as_ref()
                .map_or(Err("unreadable"), |a| a.as_ref().map_err(|e| e.code()))
        );
        if let Ok(events) = decided {
            for event in events {
                stored.push((
                    event.event_type().to_owned(),
                    event.schema_version(),
                    serde_json::from_str(&event.to_payload().to_string())
                        .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?,
                ));
                state = state.apply(&event);
            }
        }
    }
    Ok(())
}
