//! A batch's commands decided ahead of their commits: each on the state the
//! ones before it leave, written as one chain, and decided again the
//! ordinary way only when their first decision cannot stand.

use chrono::Utc;
use fangkong_app::{AppError, Application, Envelope, Outcome, Pipeline, Target};
use fangkong_domain::checkpoint::{CheckpointCommand, RecordCrossing};
use fangkong_domain::returnee::{PersonalData, RegisterReturnee, ReturneeCommand};
use fangkong_domain::*;
use fangkong_store::testing::TestDb;
use fangkong_store::EventStore;
use futures::future::join_all;

async fn application(db: &TestDb) -> (EventStore, Application) {
    let store = EventStore::open(db.url()).await.expect("the store opens");
    let kek = fangkong_vault::Kek::random().expect("a KEK");
    let vault = fangkong_vault::Vault::open(store.clone(), kek)
        .await
        .expect("the vault opens");
    let app = Application::new(store.clone(), Township::default(), vault);
    (store, app)
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("a name")
}

/// One command of a batch, on its target.
enum Step {
    Checkpoint(Target, CheckpointCommand),
    Returnee(Target, ReturneeCommand),
}

fn crossing(checkpoint: CheckpointId) -> Step {
    Step::Checkpoint(
        Target::new(
            checkpoint.stream_id(),
            checkpoint.as_uuid(),
            "checkpoint.crossing",
        ),
        CheckpointCommand::RecordCrossing(RecordCrossing {
            subject: CrossingSubject::Person,
            people: Count::parse(1).expect("count"),
            plate: None,
            temperature: Some(Temperature::parse(36.5).expect("t")),
            origin: None,
            destination: None,
            outcome: CrossingOutcome::Admitted,
        }),
    )
}

fn on_returnee(id: ReturneeId, operation: &'static str, command: ReturneeCommand) -> Step {
    Step::Returnee(
        Target::new(id.stream_id(), id.as_uuid(), operation),
        command,
    )
}

fn visit(id: ReturneeId) -> Step {
    on_returnee(
        id,
        "returnee.health_check",
        ReturneeCommand::RecordHealthCheck {
            temperature: Temperature::parse(36.6).expect("t"),
            symptoms: vec![],
            visited_by: None,
        },
    )
}

fn registration(id: ReturneeId, app: &Application) -> Step {
    on_returnee(
        id,
        "returnee.register",
        ReturneeCommand::Register(RegisterReturnee {
            returnee_id: id,
            zone_id: ZoneId::new(),
            village_id: VillageId::new(),
            grid_id: GridId::new(),
            arrival_date: app.township().local_date(Utc::now()),
            origin: Origin {
                region: name("湖北省武汉市"),
                risk: RiskLevel::High,
            },
            personal: PersonalData {
                name: name("张三"),
                resident_id: ResidentIdNumber::parse("11010519491231002X").expect("id"),
                phone: PhoneNumber::parse("13812345678").expect("phone"),
                address: Text::parse("桥头村三组12号").expect("address"),
            },
        }),
    )
}

async fn run(app: &Application, steps: &[Step]) -> (Vec<Result<Outcome, AppError>>, usize) {
    let pipeline = Pipeline::new(steps.len());
    let answers = join_all(steps.iter().enumerate().map(|(i, step)| {
        pipeline.run(i, move || async move {
            let envelope = Envelope::system();
            match step {
                Step::Checkpoint(target, command) => {
                    app.execute(&envelope, target, command.clone()).await
                }
                Step::Returnee(target, command) => {
                    app.execute(&envelope, target, command.clone()).await
                }
            }
        })
    }))
    .await;
    (answers, pipeline.decided_again())
}

async fn established(app: &Application) -> CheckpointId {
    let id = CheckpointId::new();
    app.execute(
        &Envelope::system(),
        &Target::new(id.stream_id(), id.as_uuid(), "checkpoint.establish"),
        CheckpointCommand::Establish {
            checkpoint_id: id,
            zone_id: ZoneId::new(),
            village_id: None,
            name: name("桥头村路口"),
            kind: CheckpointKind::VillageEntrance,
        },
    )
    .await
    .expect("established");
    id
}

async fn later_commands_are_decided_on_what_queued_ones_leave(db: &TestDb) {
    let (store, app) = application(db).await;
    let returnee = ReturneeId::new();
    let steps = [
        registration(returnee, &app),
        on_returnee(
            returnee,
            "returnee.quarantine",
            ReturneeCommand::StartQuarantine { planned_days: None },
        ),
        visit(returnee),
        visit(returnee),
    ];
    let (answers, decided_again) = run(&app, &steps).await;
    let versions: Vec<u64> = answers
        .iter()
        .map(|a| a.as_ref().expect("recorded").version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    // Each was decided before the one before it was committed, on the state
    // that one left, and none had to be decided again.
    assert_eq!(decided_again, 0);
    // The personal data of the person registered in the batch is sealed
    // under the one key the batch stored with the registration.
    assert!(app.vault().has_key(&returnee.stream_id()));
    store.close().await;
}

async fn a_refusal_leaves_the_commands_queued_before_it_standing(db: &TestDb) {
    let (store, app) = application(db).await;
    let checkpoint = established(&app).await;
    let steps = [
        crossing(checkpoint),
        crossing(checkpoint),
        // No such returnee: refused, then decided again the ordinary way.
        visit(ReturneeId::new()),
        crossing(checkpoint),
    ];
    let (answers, decided_again) = run(&app, &steps).await;
    assert!(answers[0].is_ok() && answers[1].is_ok() && answers[3].is_ok());
    assert!(answers[2].is_err(), "{:?}", answers[2]);
    assert_eq!(
        decided_again, 1,
        "only the refused command is decided again, not the ones queued before it"
    );
    let positions: Vec<u64> = [0, 1, 3]
        .iter()
        .map(|i| answers[*i].as_ref().expect("recorded").position)
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(
        store
            .stream_version(&checkpoint.stream_id())
            .await
            .expect("version"),
        4
    );
    store.close().await;
}

async fn a_command_refused_on_what_an_earlier_one_left_is_refused_in_order(db: &TestDb) {
    let (store, app) = application(db).await;
    let returnee = ReturneeId::new();
    let steps = [
        registration(returnee, &app),
        // Before the quarantine started: refused, as it would be alone.
        visit(returnee),
        on_returnee(
            returnee,
            "returnee.quarantine",
            ReturneeCommand::StartQuarantine { planned_days: None },
        ),
        visit(returnee),
    ];
    let (answers, _) = run(&app, &steps).await;
    assert!(
        matches!(answers[1], Err(AppError::Rule(_))),
        "{:?}",
        answers[1]
    );
    let versions: Vec<Option<u64>> = answers
        .iter()
        .map(|a| a.as_ref().ok().map(|o| o.version))
        .collect();
    assert_eq!(versions, [Some(1), None, Some(2), Some(3)]);
    store.close().await;
}

fangkong_store::each_backend!(threads = 2; [by_ref];
    later_commands_are_decided_on_what_queued_ones_leave,
    a_refusal_leaves_the_commands_queued_before_it_standing,
    a_command_refused_on_what_an_earlier_one_left_is_refused_in_order,
);
