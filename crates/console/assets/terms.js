// The words of the command centre: every code the API sends, in the
// Chinese the township's cadres use (DOMAIN.md and the township's summary).
// Nothing here touches the page; app.js and charts.js read these tables.

export const ROLE_LABELS = {
  admin: "管理员",
  zone_worker: "片区工作人员",
  county: "县级部门",
  auditor: "审计",
};

/** Figure codes, as the dashboards name them, with their Chinese labels. */
export const FIGURE_LABELS = {
  returnees_registered: "登记返乡人员",
  returnees_registered_high_risk: "其中高风险地区来",
  returnees_registered_medium_risk: "其中中风险地区来",
  returnees_registered_low_risk: "其中低风险地区来",
  returnees_screened: "入户排查",
  responsibility_teams_assigned: "落实“五包一”",
  quarantines_started: "开始居家隔离",
  quarantines_ended: "解除隔离",
  quarantines_ended_completed: "其中期满解除",
  quarantines_ended_referred_for_treatment: "其中送医治疗",
  quarantines_ended_transferred: "其中转移管理",
  quarantines_ended_lost_to_follow_up: "其中失去联系",
  health_visits_recorded: "测温记录",
  health_visits_due: "应上门测温",
  health_visits_made: "上门测温",
  health_visits_missed: "漏访",
  health_visits_pending: "待访",
  abnormal_findings: "发现异常",
  referrals: "转诊",
  crossings: "卡口登记",
  crossings_people: "登记人数",
  crossings_vehicles: "登记车辆",
  crossings_admitted: "检查放行",
  crossings_turned_back: "劝返",
  crossings_referred_to_quarantine: "转居家隔离",
  venues_registered: "登记场所",
  commitments_signed: "签订承诺书",
  venues_closed: "关停场所",
  closure_notices_posted: "张贴关停通告",
  venues_reopened: "恢复营业",
  venues_dismantled: "捣毁麻将馆、牌馆",
  tables_confiscated: "收缴牌桌",
  people_detained: "行政拘留",
  owners_admonished: "训诫老板",
  players_admonished: "训诫打牌人员",
  gatherings_dispersed: "劝散聚众打牌",
  gathering_people_dispersed: "劝散人数",
  banquets_reported: "登记宴席",
  banquets_postponed: "延期办席",
  banquets_cancelled: "取消办席",
  banquets_scaled_down: "简办",
  publicity_leaflet: "发放宣传资料",
  publicity_notice: "张贴通告",
  publicity_wechat_message: "微信信息",
  publicity_sms_message: "手机短信",
  publicity_broadcast: "广播",
  publicity_village_loudspeaker: "村村响喇叭",
  publicity_banner: "横幅",
  publicity_slogan: "标语",
  publicity_bulletin_board: "宣传栏",
  publicity_propaganda_vehicle: "宣传车",
  publicity_mobile_loudspeaker: "移动喇叭",
  publicity_persuasion_squad: "宣传劝导小分队",
  publicity_electronic_screen: "大型电子屏",
  publicity_led_screen: "LED屏",
  publicity_village_rules_adopted: "制定村规民约",
  publicity_market_day_cancelled: "取消赶集",
  patrols: "巡逻",
  patrol_people_persuaded: "巡逻劝导人数",
  staff_health_checks: "干部职工晨检",
  staff_abnormal: "晨检异常",
};

/** Groups of figures, in the order of the summary's "four styles". */
export const FIGURE_GROUPS = [
  {
    id: "returnees",
    label: "返乡人员摸排",
    codes: [
      "returnees_registered",
      "returnees_registered_high_risk",
      "returnees_registered_medium_risk",
      "returnees_registered_low_risk",
      "returnees_screened",
      "responsibility_teams_assigned",
    ],
  },
  {
    id: "quarantine",
    label: "居家隔离与上门测温",
    codes: [
      "quarantines_started",
      "quarantines_ended",
      "quarantines_ended_completed",
      "quarantines_ended_referred_for_treatment",
      "quarantines_ended_transferred",
      "quarantines_ended_lost_to_follow_up",
      "health_visits_due",
      "health_visits_made",
      "health_visits_missed",
      "health_visits_pending",
      "health_visits_recorded",
      "abnormal_findings",
      "referrals",
    ],
  },
  {
    id: "checkpoints",
    label: "卡口值守",
    codes: [
      "crossings",
      "crossings_people",
      "crossings_vehicles",
      "crossings_admitted",
      "crossings_turned_back",
      "crossings_referred_to_quarantine",
    ],
  },
  {
    id: "venues",
    label: "场所管控",
    codes: [
      "venues_registered",
      "commitments_signed",
      "venues_closed",
      "closure_notices_posted",
      "venues_reopened",
      "venues_dismantled",
      "tables_confiscated",
      "people_detained",
      "owners_admonished",
      "players_admonished",
    ],
  },
  {
    id: "gatherings",
    label: "聚集与宴席",
    codes: [
      "gatherings_dispersed",
      "gathering_people_dispersed",
      "banquets_reported",
      "banquets_postponed",
      "banquets_cancelled",
      "banquets_scaled_down",
    ],
  },
  {
    id: "publicity",
    label: "宣传",
    codes: [
      "publicity_leaflet",
      "publicity_notice",
      "publicity_wechat_message",
      "publicity_sms_message",
      "publicity_broadcast",
      "publicity_village_loudspeaker",
      "publicity_banner",
      "publicity_slogan",
      "publicity_bulletin_board",
      "publicity_propaganda_vehicle",
      "publicity_mobile_loudspeaker",
      "publicity_persuasion_squad",
      "publicity_electronic_screen",
      "publicity_led_screen",
      "publicity_village_rules_adopted",
      "publicity_market_day_cancelled",
    ],
  },
  {
    id: "patrols",
    label: "巡逻与晨检",
    codes: ["patrols", "patrol_people_persuaded", "staff_health_checks", "staff_abnormal"],
  },
];

/** The figures a duty officer reads first: on the board's cards and in every zone row. */
export const KEY_FIGURES = [
  "returnees_registered",
  "quarantines_started",
  "health_visits_made",
  "health_visits_missed",
  "crossings",
  "crossings_turned_back",
  "venues_closed",
  "banquets_postponed",
  "abnormal_findings",
  "referrals",
];

/** Reporting completeness of a day (the board's strip), in reading order. */
export const COMPLETENESS_LABELS = {
  expected: "应报",
  submitted: "已报",
  on_time: "按时",
  zero_reports: "零报告",
  late: "迟报",
  missing: "未报",
  pending: "待报",
  amended: "补报/修订",
};

/** A zone's report for a day (ReportState). */
export const REPORT_STATES = {
  pending: { label: "待报", tone: "wait", mark: "○", hint: "当日尚未上报，截止时间未到" },
  missing: { label: "未报", tone: "bad", mark: "✕", hint: "过了截止时间仍未上报" },
  submitted: { label: "已报", tone: "ok", mark: "✓", hint: "已按时上报" },
  zero: { label: "零报告", tone: "ok", mark: "0", hint: "当日无情况，已报零报告" },
  late: { label: "迟报", tone: "warn", mark: "!", hint: "截止时间后才上报" },
  amended: { label: "补报/修订", tone: "warn", mark: "±", hint: "上报后又补录了工作，数字有变动" },
  none: { label: "无需上报", tone: "none", mark: "–", hint: "片区当日尚未设立" },
};

export const STANDING_LABELS = {
  under_quarantine: "在隔离",
  awaiting_referral: "待转诊",
  venues_closed: "关停场所",
};

export const VENUE_KINDS = {
  mahjong_parlour: "麻将馆",
  card_room: "棋牌室",
  hotel: "宾馆",
  restaurant: "餐馆",
  shop: "门店",
  supermarket: "超市",
  market: "市场",
  enterprise: "企业",
  residential_compound: "居民小区",
  other: "其他场所",
};

export const VENUE_STATUS = {
  open: "营业",
  closed: "关停",
  dismantled: "已捣毁",
};

export const CHECKPOINT_KINDS = {
  village_entrance: "村口值守点",
  compound_gate: "机关大院门岗",
  road: "道路卡口",
};

export const BANQUET_KINDS = {
  wedding: "喜事（婚宴）",
  funeral: "丧事",
  birthday: "寿宴",
  housewarming: "乔迁宴",
  other: "其他宴席",
};

export const BANQUET_STATUS = {
  planned: { label: "已登记", tone: "wait" },
  reported: { label: "已登记", tone: "wait" },
  postponed: { label: "延期", tone: "ok" },
  cancelled: { label: "取消", tone: "ok" },
  scaled_down: { label: "简办", tone: "ok" },
};

export const RISK_LEVELS = {
  high: { label: "高风险", tone: "bad" },
  medium: { label: "中风险", tone: "warn" },
  low: { label: "低风险", tone: "none" },
};

export const LIVE_STATES = {
  connecting: "连接中",
  live: "实时",
  offline: "已断开",
  paused: "未实时",
  history: "历史视图",
};

/** Field names a 422 may list, in words. */
export const FIELD_LABELS = {
  zero_report: "零报告",
  submitted_by: "报送人",
  figures: "上报数字",
  date: "日期",
  from: "起始日期",
  to: "截止日期",
  as_of: "截至时间",
  min_position: "日志位置",
  zone_id: "片区",
  occurred_at: "发生时间",
  cursor: "翻页",
};

/** A field of a problem's `errors` in words: "figures.crossings" reads 上报数字“卡口登记”. */
export function fieldLabel(field) {
  const name = String(field || "");
  if (name.startsWith("figures.")) {
    const code = name.slice("figures.".length);
    return "上报数字“" + (FIGURE_LABELS[code] || code) + "”";
  }
  return FIELD_LABELS[name] || name;
}

/** Stable problem codes (problem+json `code`) in words. */
export const PROBLEM_CODES = {
  // Transport and access
  network: "无法连接服务器，请检查网络后重试",
  bad_answer: "服务器的回答无法识别",
  client_error: "页面处理出错，请刷新页面后重试",
  unauthenticated: "令牌无效、已过期或已被吊销，请重新登录",
  forbidden: "当前角色无权使用此功能",
  not_found: "未找到：片区不存在，或不在您的负责范围内",
  too_many_failed_attempts: "登录失败次数过多，请稍后再试",
  rate_limited: "请求过于频繁，请稍后再试",
  request_timeout: "请求超时，请稍后再试",
  method_not_allowed: "不支持的操作",
  malformed_json: "请求格式有误",
  invalid_fields: "填写有误",
  version_mismatch: "数据已被他人更新，请刷新后重试",
  bad_if_match: "版本条件格式有误",
  idempotency_key_reused: "重复提交的请求与首次不一致，请重新提交",
  unsupported_media_type: "请求格式有误",
  payload_too_large: "提交的内容过大",
  write_contended: "同时有其他人在写入，请重试",
  store_unavailable: "服务暂不可用，请稍后再试",
  projection_stalled: "统计数字暂停更新，需管理员处理",
  log_corrupt: "数据日志无法读取，需管理员处理",
  internal: "服务器内部错误",
  // Daily reports
  zero_report_with_activity: "当天已记录工作，不能报零报告",
  zero_report_with_figures: "零报告不能填写数字",
  report_for_future_day: "日期未到，不能提前上报",
  // Other rules of the domain
  invalid_value: "填写的值不符合要求",
  future_date: "日期不能晚于今天",
  zone_not_established: "片区不存在",
  zone_already_established: "片区已设立",
  quarantine_already_active: "此人已在居家隔离中，不能重复开始",
  no_active_quarantine: "此人不在居家隔离中",
  quarantine_before_arrival: "隔离不能早于返乡日期",
  quarantine_ends_before_start: "解除日期不能早于开始隔离日期",
  released_before_planned_end: "未到计划解除日期，不能按期满解除",
  health_check_before_quarantine: "测温日期早于隔离开始日期",
  referral_without_abnormal_condition: "没有待转诊的异常情况",
  venue_already_closed: "该场所已关停",
  venue_not_closed: "该场所未关停，无需恢复营业",
  venue_dismantled: "该场所已捣毁，不能恢复营业",
  banquet_cancelled: "宴席已取消",
  postponement_not_later: "延期后的日期必须晚于原定日期",
  scale_down_not_smaller: "简办后的人数必须少于原定人数",
  dhis2_not_configured: "服务器未配置 DHIS2 对接",
};

/** HTTP statuses in words, when a code is not in the table above. */
export const STATUS_WORDS = {
  0: "无法连接服务器",
  400: "请求有误",
  401: "需要重新登录",
  403: "当前角色无权使用此功能",
  404: "片区不存在或不在您的负责范围内",
  409: "与当前状态冲突，未能办理",
  412: "数据已被他人更新，请刷新后重试",
  413: "提交的内容过大",
  415: "请求格式有误",
  422: "填写有误",
  428: "需要先刷新数据再提交",
  429: "请求过于频繁，请稍后再试",
  500: "服务器内部错误",
  502: "服务暂不可用，请稍后再试",
  503: "服务暂不可用，请稍后再试",
  504: "服务响应超时，请稍后再试",
};

/**
 * A problem in words: `{ title, detail, fields: ["字段：说明"], retryAfter }`.
 * `title` is Chinese; `detail` is the server's own detail (often English),
 * shown beside it so nothing is lost.
 */
export function problemWords(problem) {
  const p = problem || {};
  const status = Number(p.status) || 0;
  let title = PROBLEM_CODES[p.code] || STATUS_WORDS[status] || "操作未能完成";
  if (!PROBLEM_CODES[p.code] && status >= 500 && !STATUS_WORDS[status]) {
    title = "服务器出错";
  }
  const fields = Array.isArray(p.errors)
    ? p.errors.map((e) => fieldLabel(e && e.field) + "：" + String((e && e.message) || ""))
    : [];
  let retry = "";
  if (p.retryAfter) {
    retry = "请在 " + p.retryAfter + " 秒后再试";
  }
  return { title, detail: p.detail ? String(p.detail) : "", fields, retry, code: p.code || "", status };
}

export function figureLabel(code) {
  return FIGURE_LABELS[code] || code;
}

export function reportState(state) {
  return REPORT_STATES[state || "none"] || { label: String(state), tone: "none", mark: "?", hint: "" };
}
