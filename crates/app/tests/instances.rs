//! Two application instances on one store, as two servers on one database
//! are: each with its own cache and its own turns, so what one records the
//! other learns only from the store. Crossings never collide; ordered
//! commands beaten by the other instance are decided again and land; a
//! no-op is judged on the stream as it stands; identical keyed retries
//! spread over both write once.

use std::sync::Arc;

use chrono::{Duration, Utc};
use fangkong_app::{Application, Envelope, Outcome, Target};
use fangkong_domain::checkpoint::{CheckpointCommand, RecordCrossing};
use fangkong_domain::returnee::{PersonalData, RegisterReturnee, ReturneeCommand, TeamMember};
use fangkong_domain::*;
use fangkong_store::testing::TestDb;
use fangkong_store::EventStore;
use futures::future::join_all;

async fn two_instances(db: &TestDb) -> (EventStore, [Application; 2]) {
    let store = EventStore::open(db.url()).await.expect("the store opens");
    let township = Township::default();
    // One KEK, two instances: each holds the data keys it loads or makes.
    let kek = fangkong_vault::Kek::random().expect("a KEK");
    let vault = || async {
        let kek = fangkong_vault::Kek::from_hex(&kek.to_hex()).expect("the KEK");
        fangkong_vault::Vault::open(store.clone(), kek)
            .await
            .expect("the vault opens")
    };
    let apps = [
        Application::new(store.clone(), township, vault().await),
        Application::new(store.clone(), township, vault().await),
    ];
    (store, apps)
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("a name")
}

fn crossing() -> CheckpointCommand {
    CheckpointCommand::RecordCrossing(RecordCrossing {
        subject: CrossingSubject::Person,
        people: Count::parse(1).expect("count"),
        plate: None,
        temperature: Some(Temperature::parse(36.5).expect("t")),
        origin: None,
        destination: None,
        outcome: CrossingOutcome::Admitted,
    })
}

async fn checkpoint(app: &Application) -> Target {
    let id = CheckpointId::new();
    let target = Target::new(id.stream_id(), id.as_uuid(), "checkpoint.establish");
    let establish = CheckpointCommand::Establish {
        checkpoint_id: id,
        zone_id: ZoneId::new(),
        village_id: None,
        name: name("桥头村路口"),
        kind: CheckpointKind::VillageEntrance,
    };
    app.execute(&Envelope::system(), &target, establish)
        .await
        .expect("established");
    Target::new(id.stream_id(), id.as_uuid(), "checkpoint.crossing")
}

fn team(doctor: &str) -> Vec<TeamMember> {
    TeamRole::ALL
        .iter()
        .map(|role| TeamMember {
            role: *role,
            name: name(if *role == TeamRole::VillageDoctor {
                doctor
            } else {
                role.code()
            }),
            phone: None,
        })
        .collect()
}

/// A returnee in home quarantine since yesterday.
async fn quarantined(app: &Application) -> ReturneeId {
    let id = ReturneeId::new();
    let yesterday = Utc::now() - Duration::days(1);
    let register = ReturneeCommand::Register(RegisterReturnee {
        returnee_id: id,
        zone_id: ZoneId::new(),
        village_id: VillageId::new(),
        grid_id: GridId::new(),
        arrival_date: app.township().local_date(yesterday),
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
    });
    let mut envelope = Envelope::system();
    envelope.occurred_at = Some(yesterday);
    for (operation, command) in [
        ("returnee.register", register),
        (
            "returnee.quarantine",
            ReturneeCommand::StartQuarantine { planned_days: None },
        ),
    ] {
        app.execute(
            &envelope,
            &Target::new(id.stream_id(), id.as_uuid(), operation),
            command,
        )
        .await
        .expect("recorded");
    }
    id
}

async fn crossings_from_two_instances_never_collide(db: &TestDb) {
    let (store, [a, b]) = two_instances(db).await;
    let target = Arc::new(checkpoint(&a).await);
    let sends = (0..64).map(|w| {
        let (app, target) = (
            if w % 2 == 0 { a.clone() } else { b.clone() },
            target.clone(),
        );
        async move {
            let mut answers = vec![];
            for _ in 0..5 {
                answers.push(app.execute(&Envelope::system(), &target, crossing()).await);
            }
            answers
        }
    });
    let answers: Vec<_> = join_all(sends).await.into_iter().flatten().collect();
    let refused: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        refused.first()
    );
    assert_eq!(
        store
            .stream_version(&target.stream_id)
            .await
            .expect("version"),
        321
    );
    let conflicts = a.write_counts().conflicts + b.write_counts().conflicts;
    assert_eq!(
        conflicts, 0,
        "a crossing never waits on, nor loses to, another writer"
    );
    store.close().await;
}

async fn ordered_commands_beaten_by_the_other_instance_land_on_fresh_state(db: &TestDb) {
    let (store, [a, b]) = two_instances(db).await;
    let id = quarantined(&a).await;
    let target = Arc::new(Target::new(
        id.stream_id(),
        id.as_uuid(),
        "returnee.health_check",
    ));
    let sends = (0..16).map(|w| {
        let (app, target) = (
            if w % 2 == 0 { a.clone() } else { b.clone() },
            target.clone(),
        );
        async move {
            let mut answers = vec![];
            for i in 0..5 {
                let visit = ReturneeCommand::RecordHealthCheck {
                    temperature: Temperature::parse(36.0 + f64::from(i) / 10.0).expect("t"),
                    symptoms: vec![],
                    visited_by: None,
                };
                answers.push(app.execute(&Envelope::system(), &target, visit).await);
            }
            answers
        }
    });
    let answers: Vec<Result<Outcome, _>> = join_all(sends).await.into_iter().flatten().collect();
    let mut versions: Vec<u64> = answers
        .iter()
        .map(|a| a.as_ref().map(|o| o.version).expect("every visit lands"))
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (3..83).collect::<Vec<_>>(),
        "each on the state the last one left"
    );
    let conflicts = a.write_counts().conflicts + b.write_counts().conflicts;
    assert!(
        conflicts > 0,
        "the other instance's writes were met, and decided again"
    );
    store.close().await;
}

async fn a_no_op_is_judged_on_the_stream_as_it_stands(db: &TestDb) {
    let (store, [a, b]) = two_instances(db).await;
    let id = quarantined(&a).await;
    let target = Target::new(id.stream_id(), id.as_uuid(), "returnee.team");
    let assign = |doctor: &str| ReturneeCommand::AssignTeam {
        members: team(doctor),
    };
    a.execute(&Envelope::system(), &target, assign("王医生"))
        .await
        .expect("assigned");
    // The other instance changes the team; this one still holds the first.
    b.execute(&Envelope::system(), &target, assign("李医生"))
        .await
        .expect("changed");
    let back = a
        .execute(&Envelope::system(), &target, assign("王医生"))
        .await
        .expect("assigned again");
    assert_eq!(back.events.len(), 1, "not a no-op: the team had changed");
    let state = a
        .load::<fangkong_domain::returnee::Returnee>(&target.stream_id)
        .await
        .expect("loads");
    assert_eq!(state.state.team, team("王医生"));
    store.close().await;
}

async fn identical_keyed_crossings_over_two_instances_write_once(db: &TestDb) {
    let (store, [a, b]) = two_instances(db).await;
    let target = Arc::new(checkpoint(&a).await);
    let mut envelope = Envelope::system();
    envelope.idempotency_key = Some("post-7:0042".into());
    envelope.fingerprint = [7; 32];
    let envelope = Arc::new(envelope);
    let answers = join_all((0..50).map(|i| {
        let (app, target, envelope) = (
            if i % 2 == 0 { a.clone() } else { b.clone() },
            target.clone(),
            envelope.clone(),
        );
        async move { app.execute(&envelope, &target, crossing()).await }
    }))
    .await;
    let outcomes: Vec<&Outcome> = answers
        .iter()
        .map(|a| a.as_ref().expect("never refused"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| !o.replayed).count(), 1);
    assert!(outcomes.iter().all(|o| o.position == outcomes[0].position));
    assert_eq!(
        store
            .stream_version(&target.stream_id)
            .await
            .expect("version"),
        2
    );
    // The same key with something else asked is refused, and records nothing.
    let mut other = (*envelope).clone();
    other.fingerprint = [8; 32];
    let refused = a.execute(&other, &target, crossing()).await;
    assert!(
        matches!(refused, Err(fangkong_app::AppError::KeyReused { .. })),
        "{refused:?}"
    );
    assert_eq!(
        store
            .stream_version(&target.stream_id)
            .await
            .expect("version"),
        2
    );
    store.close().await;
}

async fn first_personal_writes_from_two_instances_agree_on_one_key(db: &TestDb) {
    use fangkong_domain::activity::{RecordStaffHealthCheck, StaffChecks, StaffCommand};
    use fangkong_domain::personal::sealing_context;
    let (store, [a, b]) = two_instances(db).await;
    // The day's staff checks: one subject, written by both instances at
    // once, neither holding a key for it yet.
    let today = a.context(None).expect("a context").today;
    let stream = StaffChecks::stream_id(today);
    let target = Arc::new(Target::new(
        stream.clone(),
        uuid::Uuid::nil(),
        "staff.check",
    ));
    let sends = (0..16).map(|w| {
        let (app, target) = (
            if w % 2 == 0 { a.clone() } else { b.clone() },
            target.clone(),
        );
        async move {
            app.execute(
                &Envelope::system(),
                &target,
                StaffCommand::from(RecordStaffHealthCheck {
                    staff: name(&format!("干部{w}")),
                    temperature: Temperature::parse(36.5).expect("t"),
                    symptoms: vec![],
                }),
            )
            .await
        }
    });
    for answer in join_all(sends).await {
        answer.expect("every check is recorded");
    }
    // One key, and every name sealed under it opens for a third instance.
    let kek = a.vault().kek_id();
    assert_eq!(kek, b.vault().kek_id());
    let rows = store.subject_keys().await.expect("rows");
    assert_eq!(rows.iter().filter(|r| r.subject == stream).count(), 1);
    let events = store.read_stream(&stream, 1, 100).await.expect("read");
    assert_eq!(events.len(), 16);
    b.vault().refresh().await.expect("refreshed");
    for event in events {
        let sealed = event.payload["staff"]["sealed"].as_str().expect("sealed");
        let context = sealing_context(&stream, "StaffHealthCheckRecorded", &["staff"]);
        let opened = b
            .vault()
            .open_sealed(&stream, &context, sealed)
            .expect("opens");
        assert!(
            matches!(opened, fangkong_vault::Opened::Clear(_)),
            "{opened:?}"
        );
    }
    store.close().await;
}

/// Waits (5 s at most) until `opened` answers erased, failing if it ever
/// answers anything but the clear value meanwhile.
async fn until_erased(opened: impl Fn() -> fangkong_vault::Opened<serde_json::Value>, whose: &str) {
    use fangkong_vault::Opened;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match opened() {
            Opened::Erased => return,
            Opened::Clear(_) => assert!(
                std::time::Instant::now() < deadline,
                "the other instance still opens the erased {whose}'s data"
            ),
            other => panic!("neither open nor erased: {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn an_erasure_one_instance_records_is_followed_by_the_other_without_a_refresh(db: &TestDb) {
    use fangkong_domain::personal::sealing_context;
    use fangkong_vault::Opened;
    let (store, [a, b]) = two_instances(db).await;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // The follower reads the log through a store of its own, as another
    // server would: it hears of new events as that server does.
    let elsewhere = EventStore::open(db.url()).await.expect("the store opens");
    let follower = tokio::spawn(fangkong_app::personal::follow_erasures(
        elsewhere.clone(),
        b.vault().clone(),
        stopping,
    ));
    let id = quarantined(&a).await;
    let stream = id.stream_id();
    // The other instance learns the new key once, then never reads the key
    // rows again: only the follower can tell it of the erasure.
    b.vault().refresh().await.expect("refreshed");
    let registered = store.read_stream(&stream, 1, 1).await.expect("read");
    let sealed = registered[0].payload["personal"]["sealed"]
        .as_str()
        .expect("sealed")
        .to_owned();
    let context = sealing_context(&stream, "ReturneeRegistered", &["personal"]);
    let opened = || {
        b.vault()
            .open_sealed(&stream, &context, &sealed)
            .expect("opens")
    };
    assert!(matches!(opened(), Opened::Clear(_)), "{:?}", opened());
    a.erase_personal_data(
        &Envelope::system(),
        &Target::new(stream.clone(), id.as_uuid(), "returnee.erase"),
        fangkong_domain::returnee::ErasureBasis::Request,
        Text::parse("the person asked").expect("a reason"),
    )
    .await
    .expect("erased");
    until_erased(opened, "person").await;
    // A banquet's host family, erased the same way under its own event.
    use fangkong_domain::banquet::{BanquetCommand, BanquetHost};
    use fangkong_domain::returnee::ErasureBasis;
    let banquet = BanquetId::new();
    let stream = banquet.stream_id();
    a.execute(
        &Envelope::system(),
        &Target::new(stream.clone(), banquet.as_uuid(), "banquet.report"),
        BanquetCommand::Report {
            banquet_id: banquet,
            zone_id: ZoneId::new(),
            village_id: None,
            kind: BanquetKind::Wedding,
            planned_date: a.township().local_date(Utc::now()),
            expected_guests: Count::parse(100).expect("count"),
            host: BanquetHost {
                name: name("刘家"),
                phone: None,
            },
        },
    )
    .await
    .expect("reported");
    b.vault().refresh().await.expect("refreshed");
    let reported = store.read_stream(&stream, 1, 1).await.expect("read");
    let sealed = reported[0].payload["personal"]["sealed"]
        .as_str()
        .expect("sealed")
        .to_owned();
    let context = sealing_context(&stream, "BanquetReported", &["personal"]);
    let opened = || {
        b.vault()
            .open_sealed(&stream, &context, &sealed)
            .expect("opens")
    };
    assert!(matches!(opened(), Opened::Clear(_)), "{:?}", opened());
    a.erase_subject(
        &Envelope::system(),
        &Target::new(stream.clone(), banquet.as_uuid(), "banquet.erase"),
        fangkong_app::personal::DataSubject::BanquetHost,
        ErasureBasis::Request,
        Text::parse("the family asked").expect("a reason"),
    )
    .await
    .expect("erased");
    until_erased(opened, "host").await;
    stop.send(true).expect("the follower listens");
    tokio::time::timeout(std::time::Duration::from_secs(5), follower)
        .await
        .expect("the follower ends when told")
        .expect("the follower ends");
    elsewhere.close().await;
    store.close().await;
}

async fn a_key_that_outlived_its_recorded_erasure_is_destroyed_where_it_was_already_forgotten(
    db: &TestDb,
) {
    use fangkong_domain::returnee::ErasureBasis;
    let (store, [a, b]) = two_instances(db).await;
    let id = quarantined(&a).await;
    let stream = id.stream_id();
    b.vault().refresh().await.expect("refreshed");
    assert!(b.vault().has_key(&stream));
    // The erasure is recorded, then destroying the key fails: the event
    // alone, as a crash between the two leaves it.
    a.execute(
        &Envelope::system(),
        &Target::new(stream.clone(), id.as_uuid(), "returnee.erase"),
        ReturneeCommand::ErasePersonalData {
            basis: ErasureBasis::Request,
            reason: Text::parse("the person asked").expect("a reason"),
        },
    )
    .await
    .expect("recorded");
    // The other instance's follower has seen the erasure and forgotten the
    // key there; the store still holds it.
    b.vault().erased_elsewhere(&stream);
    assert!(!b.vault().has_key(&stream));
    let key = || async {
        store
            .subject_key(&stream)
            .await
            .expect("read")
            .expect("a row")
    };
    assert!(!key().await.is_erased(), "the key outlived the erasure");
    let run = b.erase_due(30).await.expect("the retention job runs");
    assert_eq!(run.erased, 0, "no one else is due");
    assert!(key().await.is_erased(), "the surviving key is destroyed");
    store.close().await;
}

fangkong_store::each_backend!(threads = 2; [by_ref];
    a_key_that_outlived_its_recorded_erasure_is_destroyed_where_it_was_already_forgotten,
    an_erasure_one_instance_records_is_followed_by_the_other_without_a_refresh,
    first_personal_writes_from_two_instances_agree_on_one_key,
    crossings_from_two_instances_never_collide,
    ordered_commands_beaten_by_the_other_instance_land_on_fresh_state,
    a_no_op_is_judged_on_the_stream_as_it_stands,
    identical_keyed_crossings_over_two_instances_write_once,
);
