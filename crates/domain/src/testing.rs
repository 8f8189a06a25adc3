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

/// Runs `commands` in order, each on its day; checks that every accepted
/// command's events round-trip through the log's encoding and that folding
/// the whole log from scratch gives the state reached step by step.
pub(crate) fn assert_history_folds<A: Aggregate>(
    commands: &[(A::Command, Context)],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let mut state = A::default();
    let mut log = Vec::new();
    for (command, ctx) in commands {
        match state.handle(command, ctx) {
            Ok(events) => {
                for event in events {
                    let back = A::Event::from_stored(
                        event.event_type(),
                        event.schema_version(),
                        event.to_payload(),
                    );
                    proptest::prop_assert_eq!(back.as_ref(), Ok(&event));
                    state = state.apply(&event);
                    log.push(event);
                }
            }
            Err(error) => proptest::prop_assert!(!error.code().is_empty()),
        }
    }
    proptest::prop_assert_eq!(A::fold(&log), state);
    Ok(())
}
