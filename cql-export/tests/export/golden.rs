//! One message of each kind → the exact row, INSERT statement and CSV line.

use crate::messages::{self, ADVICE, AVALANCHE_DANGER, LINE1, LINE2, MAIN_TEXT, PROBLEMS_JSON};
use chrono::NaiveDate;
use cql_export::{CqlValue, Row, Table, csv_header, csv_line, insert_literal, insert_prepared, row};
use serde_json::Value;

fn text(s: &str) -> CqlValue {
    CqlValue::Text(s.to_owned())
}

fn date(y: i32, m: u32, d: u32) -> CqlValue {
    CqlValue::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

#[test]
fn position() {
    let row = row(&messages::position()).unwrap();
    let values = vec![
        text("pi"),
        date(2020, 6, 29),
        CqlValue::Timestamp(1_593_398_373_000),
        CqlValue::Double(10.0909),
        CqlValue::Double(143.812),
        CqlValue::Null,
        CqlValue::Null,
        CqlValue::Null,
        text("pi/iss.position/1593398373000"),
        CqlValue::BigInt(42),
    ];
    assert_eq!(row, Row { table: Table::IssPosition, values });
    assert_eq!(
        insert_literal(&row, "outpost"),
        "INSERT INTO outpost.iss_position (station, day, time, latitude, longitude, altitude_km, velocity_kmh, \
         visibility, record_id, seq) VALUES ('pi', '2020-06-29', '2020-06-29T02:39:33.000Z', 10.0909, 143.812, \
         null, null, null, 'pi/iss.position/1593398373000', 42);"
    );
    assert_eq!(
        csv_line(&row),
        "pi,2020-06-29,2020-06-29 02:39:33.000+0000,10.0909,143.812,,,,pi/iss.position/1593398373000,42"
    );
}

#[test]
fn position_with_every_field() {
    let row = row(&messages::position_full()).unwrap();
    let values = vec![
        text("pi"),
        date(2022, 12, 2),
        CqlValue::Timestamp(1_669_950_667_000),
        CqlValue::Double(-21.950942),
        CqlValue::Double(87.37566),
        CqlValue::Double(425.782),
        CqlValue::Double(27556.981),
        text("daylight"),
        text("pi/iss.position/1669950667000"),
        CqlValue::BigInt(43),
    ];
    assert_eq!(row, Row { table: Table::IssPosition, values });
    assert_eq!(
        insert_literal(&row, "ks"),
        "INSERT INTO ks.iss_position (station, day, time, latitude, longitude, altitude_km, velocity_kmh, \
         visibility, record_id, seq) VALUES ('pi', '2022-12-02', '2022-12-02T03:11:07.000Z', -21.950942, 87.37566, \
         425.782, 27556.981, 'daylight', 'pi/iss.position/1669950667000', 43);"
    );
    assert_eq!(
        csv_line(&row),
        "pi,2022-12-02,2022-12-02 03:11:07.000+0000,-21.950942,87.37566,425.782,27556.981,daylight,\
         pi/iss.position/1669950667000,43"
    );
}

#[test]
fn whole_number_doubles_stay_doubles() {
    let message = messages::with(messages::position(), "latitude", Value::from(10));
    let message = messages::with(message, "altitude_km", Value::from(420.0));
    let row = row(&message).unwrap();
    assert_eq!((row.values[3].clone(), row.values[5].clone()), (CqlValue::Double(10.0), CqlValue::Double(420.0)));
    assert!(insert_literal(&row, "ks").contains("'2020-06-29T02:39:33.000Z', 10.0, 143.812, 420.0, null,"));
    assert!(csv_line(&row).contains(",10.0,143.812,420.0,,"));
}

#[test]
fn tle() {
    let row = row(&messages::tle()).unwrap();
    let values = vec![
        text("pi"),
        CqlValue::Int(25544),
        // 10:40:25.371840: the microseconds are truncated to milliseconds.
        CqlValue::Timestamp(1_695_033_625_371),
        text("ISS (ZARYA)"),
        text(LINE1),
        text(LINE2),
        text("pi/iss.tle/1695033625371"),
        CqlValue::BigInt(7),
    ];
    assert_eq!(row, Row { table: Table::IssTle, values });
    assert_eq!(
        insert_literal(&row, "outpost"),
        "INSERT INTO outpost.iss_tle (station, norad_id, epoch, name, line1, line2, record_id, seq) VALUES ('pi', \
         25544, '2023-09-18T10:40:25.371Z', 'ISS (ZARYA)', \
         '1 25544U 98067A   23261.44473810  .00015356  00000+0  28244-3 0  9997', \
         '2 25544  51.6419 226.5842 0005864  32.1953 116.9329 15.49383676416254', 'pi/iss.tle/1695033625371', 7);"
    );
    assert_eq!(
        csv_line(&row),
        "pi,25544,2023-09-18 10:40:25.371+0000,ISS (ZARYA),\
         1 25544U 98067A   23261.44473810  .00015356  00000+0  28244-3 0  9997,\
         2 25544  51.6419 226.5842 0005864  32.1953 116.9329 15.49383676416254,pi/iss.tle/1695033625371,7"
    );
}

#[test]
fn avalanche_warning() {
    let row = row(&messages::warning()).unwrap();
    let values = vec![
        CqlValue::Int(3022),
        date(2023, 3, 1),
        CqlValue::Timestamp(1_677_594_749_677),
        CqlValue::BigInt(332137),
        text("Trollheimen"),
        text("A"),
        CqlValue::Int(2),
        CqlValue::Int(2),
        CqlValue::Timestamp(1_677_625_200_000),
        CqlValue::Timestamp(1_677_711_599_000),
        CqlValue::Timestamp(1_677_769_200_000),
        text(MAIN_TEXT),
        text(AVALANCHE_DANGER),
        CqlValue::TextList(ADVICE.map(str::to_owned).to_vec()),
        text(PROBLEMS_JSON),
        text("pi"),
        text("pi/avalanche.warning/3022/2023-03-01/332137/1677594749677"),
        CqlValue::BigInt(3),
    ];
    assert_eq!(row, Row { table: Table::AvalancheWarning, values });

    // None of these texts holds a single quote, so they appear verbatim (newlines included).
    let [a0, a1, a2] = ADVICE;
    assert_eq!(
        insert_literal(&row, "outpost"),
        format!(
            "INSERT INTO outpost.avalanche_warning (region_id, valid_date, publish_time, reg_id, region_name, \
             region_type, lang, danger_level, valid_from, valid_to, next_warning_time, main_text, avalanche_danger, \
             advice, problems, station, record_id, seq) VALUES (3022, '2023-03-01', '2023-02-28T14:32:29.677Z', \
             332137, 'Trollheimen', 'A', 2, 2, '2023-02-28T23:00:00.000Z', '2023-03-01T22:59:59.000Z', \
             '2023-03-02T15:00:00.000Z', '{MAIN_TEXT}', '{AVALANCHE_DANGER}', ['{a0}', '{a1}', '{a2}'], \
             '{PROBLEMS_JSON}', 'pi', 'pi/avalanche.warning/3022/2023-03-01/332137/1677594749677', 3);"
        )
    );

    // The danger text has commas and newlines (quoted); the advice list has commas (quoted); the
    // problems JSON has quotes, escaped with a backslash as cqlsh reads them.
    let problems_field = r#""[{\"problem_type\":{\"id\":10,\"name\":\"Wind drifted snow (slab avalanches)\"},\"cause\":{\"id\":10,\"name\":\"Buried weak layer of new snow\"},\"size\":{\"id\":2,\"name\":\"2 - Medium\"},\"probability\":{\"id\":3,\"name\":\"Possible\"},\"sensitivity\":{\"id\":30,\"name\":\"Easy to trigger\"},\"propagation\":{\"id\":1,\"name\":\"Few steep slopes\"},\"expositions\":[\"E\",\"SE\",\"S\"],\"elevation\":{\"band\":\"above\",\"m\":1000},\"danger_level\":2},{\"problem_type\":{\"id\":5,\"name\":\"Wet snow (loose snow avalanches)\"},\"cause\":{\"id\":24,\"name\":\"Loose snow\"},\"size\":{\"id\":1,\"name\":\"1 - Small\"},\"probability\":{\"id\":3,\"name\":\"Possible\"},\"sensitivity\":{\"id\":45,\"name\":\"Spontaneous\"},\"propagation\":{\"id\":1,\"name\":\"Few steep slopes\"},\"expositions\":[\"N\",\"NE\",\"E\",\"SE\",\"S\",\"SW\",\"W\",\"NW\"],\"elevation\":{\"band\":\"below\",\"m\":800},\"danger_level\":1}]""#;
    assert_eq!(
        csv_line(&row),
        format!(
            "3022,2023-03-01,2023-02-28 14:32:29.677+0000,332137,Trollheimen,A,2,2,2023-02-28 23:00:00.000+0000,\
             2023-03-01 22:59:59.000+0000,2023-03-02 15:00:00.000+0000,{MAIN_TEXT},\"{AVALANCHE_DANGER}\",\
             \"['{a0}','{a1}','{a2}']\",{problems_field},pi,\
             pi/avalanche.warning/3022/2023-03-01/332137/1677594749677,3"
        )
    );
}

#[test]
fn an_unassessed_warning_has_a_null_danger_level_and_empty_lists() {
    let message = messages::with(messages::warning(), "danger_level", Value::Null);
    let message = messages::with(message, "reg_id", Value::from(0));
    let message = messages::with(message, "advice", Value::Array(vec![]));
    let message = messages::with(message, "problems", Value::Array(vec![]));
    let message = messages::with(message, "main_text", Value::from("Not assessed"));
    let message = messages::without(messages::without(message, "avalanche_danger"), "next_warning_time");
    let row = row(&message).unwrap();
    assert_eq!(row.get("danger_level"), Some(&CqlValue::Null));
    assert_eq!(row.get("reg_id"), Some(&CqlValue::BigInt(0)));
    assert_eq!(row.get("advice"), Some(&CqlValue::TextList(vec![])));
    assert_eq!(row.get("problems"), Some(&text("[]")));
    let literal = insert_literal(&row, "ks");
    assert!(
        literal.contains("VALUES (3022, '2023-03-01', '2023-02-28T14:32:29.677Z', 0, 'Trollheimen', 'A', 2, null,")
    );
    assert!(literal.contains("'2023-03-01T22:59:59.000Z', null, 'Not assessed', null, [], '[]', 'pi',"));
    assert!(csv_line(&row).contains(",Trollheimen,A,2,,2023-02-28 23:00:00.000+0000,"));
    assert!(csv_line(&row).contains(",,Not assessed,,[],[],pi,"));
}

#[test]
fn headers_and_prepared_statements() {
    assert_eq!(
        csv_header(Table::IssPosition),
        "station,day,time,latitude,longitude,altitude_km,velocity_kmh,visibility,record_id,seq"
    );
    assert_eq!(csv_header(Table::IssTle), "station,norad_id,epoch,name,line1,line2,record_id,seq");
    assert_eq!(
        insert_prepared(Table::IssTle, "outpost"),
        "INSERT INTO outpost.iss_tle (station, norad_id, epoch, name, line1, line2, record_id, seq) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    );
    for table in Table::ALL {
        assert_eq!(csv_header(table).split(',').collect::<Vec<_>>(), table.columns());
    }
}

/// The messages above really are the recorded answers (texts trimmed as the parser trims them).
#[test]
fn messages_match_the_recorded_fixtures() {
    let tle = include_str!("../../../tests/fixtures/celestrak_gp_CATNR25544_FORMAT_TLE.txt");
    let lines: Vec<&str> = tle.lines().map(str::trim_end).collect();
    assert_eq!(lines, ["ISS (ZARYA)", LINE1, LINE2]);

    let detail = include_str!("../../../tests/fixtures/nve_AvalancheWarningByRegion_Detail.json");
    let detail: Value = serde_json::from_str(detail).unwrap();
    let w = &detail[0];
    let trimmed = |key: &str| w[key].as_str().unwrap().trim().to_owned();
    assert_eq!((w["RegId"].as_u64(), w["RegionId"].as_u64()), (Some(332137), Some(3022)));
    assert_eq!((trimmed("RegionName"), trimmed("DangerLevel")), ("Trollheimen".into(), "2".into()));
    assert_eq!(
        (trimmed("ValidFrom"), trimmed("PublishTime")),
        ("2023-03-01T00:00:00".into(), "2023-02-28T15:32:29.677".into())
    );
    assert_eq!((trimmed("MainText"), trimmed("AvalancheDanger")), (MAIN_TEXT.into(), AVALANCHE_DANGER.into()));
    let advice: Vec<String> = w["AvalancheAdvices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Text"].as_str().unwrap().trim().to_owned())
        .collect();
    assert_eq!(advice, ADVICE);
}
