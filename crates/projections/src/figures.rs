//! The figures of the township's control work (DOMAIN.md, "Figures the
//! dashboards and daily aggregates must show"), each under a stable code:
//! the same code names a dashboard field, a CSV column, an attested figure
//! of a daily report and a DHIS2 data element mapping.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{AddAssign, Index, IndexMut, SubAssign};

use chrono::NaiveDate;

use fangkong_domain::{
    CrossingOutcome, PublicityChannel, QuarantineEndReason, RiskLevel, VenueKind,
};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! figures {
    ($($variant:ident = $code:literal),+ $(,)?) => {
        /// One counted figure of a zone's day.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Figure {
            $($variant),+
        }

        impl Figure {
            /// Every figure, in the order of dashboards and CSV columns.
            pub const ALL: &'static [Figure] = &[$(Figure::$variant),+];

            pub fn code(self) -> &'static str {
                match self {
                    $(Figure::$variant => $code),+
                }
            }

            pub fn from_code(code: &str) -> Option<Figure> {
                match code {
                    $($code => Some(Figure::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

figures! {
    ReturneesRegistered = "returnees_registered",
    ReturneesRegisteredHighRisk = "returnees_registered_high_risk",
    ReturneesRegisteredMediumRisk = "returnees_registered_medium_risk",
    ReturneesRegisteredLowRisk = "returnees_registered_low_risk",
    ReturneesScreened = "returnees_screened",
    ResponsibilityTeamsAssigned = "responsibility_teams_assigned",
    QuarantinesStarted = "quarantines_started",
    QuarantinesEnded = "quarantines_ended",
    QuarantinesEndedCompleted = "quarantines_ended_completed",
    QuarantinesEndedReferredForTreatment = "quarantines_ended_referred_for_treatment",
    QuarantinesEndedTransferred = "quarantines_ended_transferred",
    QuarantinesEndedLostToFollowUp = "quarantines_ended_lost_to_follow_up",
    HealthVisitsRecorded = "health_visits_recorded",
    HealthVisitsDue = "health_visits_due",
    HealthVisitsMade = "health_visits_made",
    HealthVisitsMissed = "health_visits_missed",
    HealthVisitsPending = "health_visits_pending",
    AbnormalFindings = "abnormal_findings",
    Referrals = "referrals",
    Crossings = "crossings",
    CrossingsPeople = "crossings_people",
    CrossingsVehicles = "crossings_vehicles",
    CrossingsAdmitted = "crossings_admitted",
    CrossingsTurnedBack = "crossings_turned_back",
    CrossingsReferredToQuarantine = "crossings_referred_to_quarantine",
    VenuesRegistered = "venues_registered",
    CommitmentsSigned = "commitments_signed",
    VenuesClosed = "venues_closed",
    ClosureNoticesPosted = "closure_notices_posted",
    VenuesReopened = "venues_reopened",
    VenuesDismantled = "venues_dismantled",
    TablesConfiscated = "tables_confiscated",
    PeopleDetained = "people_detained",
    OwnersAdmonished = "owners_admonished",
    PlayersAdmonished = "players_admonished",
    GatheringsDispersed = "gatherings_dispersed",
    GatheringPeopleDispersed = "gathering_people_dispersed",
    BanquetsReported = "banquets_reported",
    BanquetsPostponed = "banquets_postponed",
    BanquetsCancelled = "banquets_cancelled",
    BanquetsScaledDown = "banquets_scaled_down",
    PublicityLeaflet = "publicity_leaflet",
    PublicityNotice = "publicity_notice",
    PublicityWechatMessage = "publicity_wechat_message",
    PublicitySmsMessage = "publicity_sms_message",
    PublicityBroadcast = "publicity_broadcast",
    PublicityVillageLoudspeaker = "publicity_village_loudspeaker",
    PublicityBanner = "publicity_banner",
    PublicitySlogan = "publicity_slogan",
    PublicityBulletinBoard = "publicity_bulletin_board",
    PublicityPropagandaVehicle = "publicity_propaganda_vehicle",
    PublicityMobileLoudspeaker = "publicity_mobile_loudspeaker",
    PublicityPersuasionSquad = "publicity_persuasion_squad",
    PublicityElectronicScreen = "publicity_electronic_screen",
    PublicityLedScreen = "publicity_led_screen",
    PublicityVillageRulesAdopted = "publicity_village_rules_adopted",
    PublicityMarketDayCancelled = "publicity_market_day_cancelled",
    Patrols = "patrols",
    PatrolPeoplePersuaded = "patrol_people_persuaded",
    StaffHealthChecks = "staff_health_checks",
    StaffAbnormal = "staff_abnormal",
}

const COUNT: usize = Figure::ALL.len();

impl Figure {
    /// Figures that depend on the reading day (a visit is "missed" only once
    /// its day is over): derived when read, never stored.
    pub fn is_derived(self) -> bool {
        matches!(
            self,
            Figure::HealthVisitsMissed | Figure::HealthVisitsPending
        )
    }

    pub fn registered_with_risk(risk: RiskLevel) -> Figure {
        match risk {
            RiskLevel::High => Figure::ReturneesRegisteredHighRisk,
            RiskLevel::Medium => Figure::ReturneesRegisteredMediumRisk,
            RiskLevel::Low => Figure::ReturneesRegisteredLowRisk,
        }
    }

    pub fn ended_because(reason: QuarantineEndReason) -> Figure {
        match reason {
            QuarantineEndReason::Completed => Figure::QuarantinesEndedCompleted,
            QuarantineEndReason::ReferredForTreatment => {
                Figure::QuarantinesEndedReferredForTreatment
            }
            QuarantineEndReason::Transferred => Figure::QuarantinesEndedTransferred,
            QuarantineEndReason::LostToFollowUp => Figure::QuarantinesEndedLostToFollowUp,
        }
    }

    pub fn crossing_outcome(outcome: CrossingOutcome) -> Figure {
        match outcome {
            CrossingOutcome::Admitted => Figure::CrossingsAdmitted,
            CrossingOutcome::TurnedBack => Figure::CrossingsTurnedBack,
            CrossingOutcome::ReferredToQuarantine => Figure::CrossingsReferredToQuarantine,
        }
    }

    pub fn publicity(channel: PublicityChannel) -> Figure {
        match channel {
            PublicityChannel::Leaflet => Figure::PublicityLeaflet,
            PublicityChannel::Notice => Figure::PublicityNotice,
            PublicityChannel::WechatMessage => Figure::PublicityWechatMessage,
            PublicityChannel::SmsMessage => Figure::PublicitySmsMessage,
            PublicityChannel::Broadcast => Figure::PublicityBroadcast,
            PublicityChannel::VillageLoudspeaker => Figure::PublicityVillageLoudspeaker,
            PublicityChannel::Banner => Figure::PublicityBanner,
            PublicityChannel::Slogan => Figure::PublicitySlogan,
            PublicityChannel::BulletinBoard => Figure::PublicityBulletinBoard,
            PublicityChannel::PropagandaVehicle => Figure::PublicityPropagandaVehicle,
            PublicityChannel::MobileLoudspeaker => Figure::PublicityMobileLoudspeaker,
            PublicityChannel::PersuasionSquad => Figure::PublicityPersuasionSquad,
            PublicityChannel::ElectronicScreen => Figure::PublicityElectronicScreen,
            PublicityChannel::LedScreen => Figure::PublicityLedScreen,
            PublicityChannel::VillageRulesAdopted => Figure::PublicityVillageRulesAdopted,
            PublicityChannel::MarketDayCancelled => Figure::PublicityMarketDayCancelled,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A value for every figure: one zone's day, a sum of days, or a sum of
/// zones. A fixed array, so summing and comparing cost no allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Figures([u64; COUNT]);

impl Default for Figures {
    fn default() -> Self {
        Figures([0; COUNT])
    }
}

impl Figures {
    pub fn get(&self, figure: Figure) -> u64 {
        self[figure]
    }

    pub fn add(&mut self, figure: Figure, amount: u64) {
        self[figure] = self[figure].saturating_add(amount);
    }

    /// Takes away what an earlier change added; never below zero.
    pub fn subtract(&mut self, figure: Figure, amount: u64) {
        self[figure] = self[figure].saturating_sub(amount);
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == 0)
    }

    /// Every figure with its value, in `Figure::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Figure, u64)> + '_ {
        Figure::ALL.iter().map(|f| (*f, self[*f]))
    }

    /// Figures whose values differ, with (then, now).
    pub fn changes_from(&self, then: &Figures) -> Vec<(Figure, u64, u64)> {
        self.iter()
            .filter(|(f, now)| then[*f] != *now)
            .map(|(f, now)| (f, then[f], now))
            .collect()
    }
}

impl SubAssign<&Figures> for Figures {
    fn sub_assign(&mut self, other: &Figures) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine = mine.saturating_sub(*theirs);
        }
    }
}

/// A figure per day, with the running total of all days kept alongside so
/// "to date" costs the days after the date, not the whole history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayBook {
    days: BTreeMap<NaiveDate, Figures>,
    total: Figures,
}

impl DayBook {
    pub fn add(&mut self, day: NaiveDate, figure: Figure, amount: u64) {
        self.days.entry(day).or_default().add(figure, amount);
        self.total.add(figure, amount);
    }

    /// Takes back what `add` put on a day; answers whether the day had it.
    pub fn subtract(&mut self, day: NaiveDate, figure: Figure, amount: u64) -> bool {
        let Some(figures) = self.days.get_mut(&day) else {
            return false;
        };
        let taken = figures[figure].min(amount);
        figures.subtract(figure, taken);
        self.total.subtract(figure, taken);
        true
    }

    pub fn get(&self, day: NaiveDate) -> Option<&Figures> {
        self.days.get(&day)
    }

    pub fn days(&self) -> &BTreeMap<NaiveDate, Figures> {
        &self.days
    }

    pub fn total(&self) -> &Figures {
        &self.total
    }

    /// Every day up to and including `date`, summed: from whichever end
    /// has fewer days to add.
    pub fn through(&self, date: NaiveDate) -> Figures {
        use std::ops::Bound::{Excluded, Unbounded};
        let half = self.days.len() / 2;
        let after = self.days.range((Excluded(date), Unbounded));
        if after.clone().take(half + 1).count() <= half {
            let mut sum = self.total.clone();
            for (_, figures) in after {
                sum -= figures;
            }
            sum
        } else {
            let mut sum = Figures::default();
            for (_, figures) in self.days.range(..=date) {
                sum += figures;
            }
            sum
        }
    }
}

impl Index<Figure> for Figures {
    type Output = u64;
    fn index(&self, figure: Figure) -> &u64 {
        &self.0[figure as usize]
    }
}

impl IndexMut<Figure> for Figures {
    fn index_mut(&mut self, figure: Figure) -> &mut u64 {
        &mut self.0[figure as usize]
    }
}

impl AddAssign<&Figures> for Figures {
    fn add_assign(&mut self, other: &Figures) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }
}

impl fmt::Debug for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .filter(|(_, v)| *v != 0)
                    .map(|(k, v)| (k.code(), v)),
            )
            .finish()
    }
}

/// Every figure by code, zeros included, so clients see the full set.
impl Serialize for Figures {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(COUNT))?;
        for (figure, value) in self.iter() {
            map.serialize_entry(figure.code(), &value)?;
        }
        map.end()
    }
}

/// Reads figures by code; an unknown code is an error, so a saved state
/// from another set of figures is never half-read.
impl<'de> Deserialize<'de> for Figures {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FiguresVisitor;
        impl<'de> Visitor<'de> for FiguresVisitor {
            type Value = Figures;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of figure codes to counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Figures, A::Error> {
                let mut figures = Figures::default();
                while let Some((code, value)) = map.next_entry::<String, u64>()? {
                    let figure = Figure::from_code(&code).ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown figure {code:?}"))
                    })?;
                    figures[figure] = value;
                }
                Ok(figures)
            }
        }
        d.deserialize_map(FiguresVisitor)
    }
}

/// Venues closed now, by kind.
pub fn venue_kind_index(kind: VenueKind) -> usize {
    VenueKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// In the contract, every figure code is a property of its own (a count),
/// so a generated client knows each one by name.
impl utoipa::PartialSchema for Figures {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let count = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(0))
                .build()
        };
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A count for every figure of DOMAIN.md, by figure code (all present).",
            ));
        for figure in Figure::ALL {
            object = object
                .property(figure.code(), count())
                .required(figure.code());
        }
        object.build().into()
    }
}

impl utoipa::ToSchema for Figures {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_unique_and_reads_back() {
        let mut seen = std::collections::HashSet::new();
        for figure in Figure::ALL {
            assert!(seen.insert(figure.code()), "duplicate {}", figure.code());
            assert_eq!(Figure::from_code(figure.code()), Some(*figure));
        }
    }

    #[test]
    fn every_publicity_channel_has_its_own_figure() {
        let figures: std::collections::HashSet<_> = PublicityChannel::ALL
            .iter()
            .map(|c| Figure::publicity(*c))
            .collect();
        assert_eq!(figures.len(), PublicityChannel::ALL.len());
        for channel in PublicityChannel::ALL {
            assert_eq!(
                Figure::publicity(*channel).code(),
                format!("publicity_{}", channel.code())
            );
        }
    }

    #[test]
    fn figures_round_trip_and_refuse_unknown_codes() {
        let mut figures = Figures::default();
        figures.add(Figure::CrossingsTurnedBack, 3);
        let text = serde_json::to_string(&figures).expect("render");
        assert_eq!(
            serde_json::from_str::<Figures>(&text).expect("read"),
            figures
        );
        assert!(serde_json::from_str::<Figures>(r#"{"no_such_figure": 1}"#).is_err());
    }

    #[test]
    fn changes_name_each_figure_that_moved() {
        let then = Figures::default();
        let mut now = Figures::default();
        now.add(Figure::HealthVisitsRecorded, 2);
        assert_eq!(
            now.changes_from(&then),
            vec![(Figure::HealthVisitsRecorded, 0, 2)]
        );
    }
}
