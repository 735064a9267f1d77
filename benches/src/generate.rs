//! Generated stand-ins for the corpus documents, used when the corpus
//! directory is absent. Each has the structure the benches and the typed
//! parsers rely on (the same keys, nesting, kinds of values and about the same
//! size) so throughput figures stay comparable in kind, though not to the
//! digit: reported figures come from the real files.

use serde_json::{Value, json};

/// A small deterministic generator (64-bit LCG); no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn words(&mut self, n: usize, vocabulary: &[&str]) -> String {
        (0..n)
            .map(|_| vocabulary[self.below(vocabulary.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

const LATIN: &[&str] = &[
    "linux",
    "show",
    "release",
    "kernel",
    "desktop",
    "open",
    "source",
    "review",
    "news",
    "week",
    "update",
    "server",
    "cloud",
    "privacy",
    "gaming",
    "build",
    "package",
    "community",
];
const JAPANESE: &[&str] = &[
    "一",
    "日本",
    "今日",
    "フォロー",
    "お願い",
    "します",
    "可愛い",
    "RT",
    "です",
    "拡散",
    "希望",
    "😊",
    "ありがとう",
];
const GERMAN: &[&str] = &[
    "Bebauungsplan",
    "Baden-Württemberg",
    "Dienst",
    "Geoinformation",
    "Höhenangaben",
    "Straße",
    "Landesamt",
    "Vermessung",
];

/// The generated stand-in for corpus file `name`.
pub fn document(name: &str) -> Vec<u8> {
    match name {
        "twitter.json" => twitter(),
        "citm_catalog.json" => citm(),
        "canada.json" => canada(),
        "github_events.json" => github_events(),
        "demo.json" => DEMO.as_bytes().to_vec(),
        "sample_rss.xml" => rss(),
        "huge.xml" => search_response(),
        "gigantic.svg" => svg(),
        "linescore.xml" => linescore(),
        other => panic!("no generator for {other}"),
    }
}

/// The JSON spec's "Image" example (public, as in the corpus).
const DEMO: &str = r#"{
        "Image": {
            "Width":  800,
            "Height": 600,
            "Title":  "View from 15th Floor",
            "Thumbnail": {
                "Url":    "http://www.example.com/image/481989943",
                "Height": 125,
                "Width":  100
            },
            "Animated" : false,
            "IDs": [116, 943, 234, 38793]
          }
      }
"#;

fn pretty(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("generated JSON serializes")
}

fn twitter() -> Vec<u8> {
    let mut rng = Rng(1);
    let statuses: Vec<Value> = (0..100u64)
        .map(|i| {
            let id = 505_874_924_095_815_681 - i * 1_000_003;
            let text = rng.words(60, JAPANESE);
            let user_id = 1_186_275_104 + rng.below(1_000_000);
            json!({
                "metadata": {"result_type": "recent", "iso_language_code": "ja"},
                "created_at": "Sun Aug 31 00:29:15 +0000 2014",
                "id": id,
                "id_str": id.to_string(),
                "text": text,
                "source": "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">Twitter for iPhone</a>",
                "truncated": false,
                "in_reply_to_status_id": null,
                "in_reply_to_user_id": null,
                "in_reply_to_screen_name": null,
                "user": {
                    "id": user_id,
                    "id_str": user_id.to_string(),
                    "name": rng.words(2, JAPANESE),
                    "screen_name": format!("user_{}", rng.below(100_000)),
                    "location": rng.words(1, JAPANESE),
                    "description": rng.words(380, JAPANESE),
                    "url": null,
                    "entities": {"description": {"urls": []}},
                    "protected": false,
                    "followers_count": rng.below(5000),
                    "friends_count": rng.below(5000),
                    "listed_count": rng.below(50),
                    "created_at": "Mon Sep 02 12:34:56 +0000 2013",
                    "favourites_count": rng.below(3000),
                    "utc_offset": null,
                    "time_zone": null,
                    "geo_enabled": false,
                    "verified": false,
                    "statuses_count": rng.below(100_000),
                    "lang": "ja",
                    "profile_background_color": "C0DEED",
                    "profile_image_url": format!("http://pbs.twimg.com/profile_images/{}/abc_normal.jpeg", rng.below(1 << 40)),
                    "profile_image_url_https": format!("https://pbs.twimg.com/profile_images/{}/abc_normal.jpeg", rng.below(1 << 40)),
                    "profile_link_color": "0084B4",
                    "default_profile": true,
                    "following": false,
                    "notifications": false
                },
                "geo": null,
                "coordinates": null,
                "place": null,
                "contributors": null,
                "retweet_count": rng.below(100),
                "favorite_count": rng.below(100),
                "entities": {
                    "hashtags": [{"text": rng.words(1, JAPANESE), "indices": [10, 14]}],
                    "symbols": [],
                    "urls": [],
                    "user_mentions": [{
                        "screen_name": format!("user_{}", rng.below(100_000)),
                        "name": rng.words(2, JAPANESE),
                        "id": rng.below(1 << 40),
                        "indices": [3, 15]
                    }]
                },
                "favorited": false,
                "retweeted": false,
                "lang": "ja"
            })
        })
        .collect();
    pretty(&json!({
        "statuses": statuses,
        "search_metadata": {
            "completed_in": 0.087,
            "max_id": 505_874_924_095_815_700u64,
            "max_id_str": "505874924095815681",
            "next_results": "?max_id=505874847260352512&q=%E4%B8%80&count=100&include_entities=1",
            "query": "%E4%B8%80",
            "count": 100,
            "since_id": 0,
            "since_id_str": "0"
        }
    }))
}

fn citm() -> Vec<u8> {
    let mut rng = Rng(2);
    let areas: serde_json::Map<String, Value> = (0..17)
        .map(|i| {
            (
                (205_705_993 + i).to_string(),
                Value::from(rng.words(3, LATIN)),
            )
        })
        .collect();
    let events: serde_json::Map<String, Value> = (0..184u64)
        .map(|i| {
            let id = 138_586_341 + i * 7;
            (
                id.to_string(),
                json!({
                    "description": null,
                    "id": id,
                    "logo": if i % 3 == 0 { Value::from(format!("/images/UE0AAAAACEKo6QAAAAZDSVRN{i}")) } else { Value::Null },
                    "name": rng.words(3, LATIN),
                    "subTopicIds": [337_184_269 + rng.below(100), 337_184_283 + rng.below(100)],
                    "subjectCode": null,
                    "subtitle": null,
                    "topicIds": [324_846_099 + rng.below(100), 107_888_604]
                }),
            )
        })
        .collect();
    let performances: Vec<Value> = (0..243u64)
        .map(|i| {
            let categories: Vec<Value> = (0..3)
                .map(|c| {
                    let areas: Vec<Value> = (0..21)
                        .map(|a| json!({"areaId": 205_705_993 + a, "blockIds": []}))
                        .collect();
                    json!({"areas": areas, "seatCategoryId": 338_937_295 + c})
                })
                .collect();
            let prices: Vec<Value> = (0..3)
                .map(|c| {
                    json!({
                        "amount": 10_000 + rng.below(90_000),
                        "audienceSubCategoryId": 337_100_890,
                        "seatCategoryId": 338_937_295 + c
                    })
                })
                .collect();
            json!({
                "eventId": 138_586_341 + (i % 184) * 7,
                "id": 339_887_544 + i,
                "logo": null,
                "name": null,
                "prices": prices,
                "seatCategories": categories,
                "seatMapImage": null,
                "start": 1_372_701_600_000u64 + i * 86_400_000,
                "venueCode": "PLEYEL_PLEYEL"
            })
        })
        .collect();
    pretty(&json!({
        "areaNames": areas,
        "audienceSubCategoryNames": {"337100890": "Abonné"},
        "blockNames": {},
        "events": events,
        "performances": performances,
        "seatCategoryNames": {"338937295": "1ère catégorie"},
        "subTopicNames": {"337184262": "Musique amplifiée"},
        "subjectNames": {},
        "topicNames": {"107888604": "Activité"},
        "topicSubTopics": {"107888604": [337_184_263, 337_184_267]},
        "venueNames": {"PLEYEL_PLEYEL": "Salle Pleyel"}
    }))
}

fn canada() -> Vec<u8> {
    // Written by hand rather than through serde_json so the numbers keep the
    // corpus file's 15-17 significant digits.
    let mut rng = Rng(3);
    let mut out = String::from(
        "{ \"type\": \"FeatureCollection\",\n  \"features\": [\n{\n    \"type\": \"Feature\",\n\
         \"properties\": { \"name\": \"Canada\" },\n\"geometry\": {\"type\":\"Polygon\",\"coordinates\":[",
    );
    let rings = 480;
    for r in 0..rings {
        out.push('[');
        let points = 116;
        for p in 0..points {
            let x = -141.0 + rng.below(8_000_000_000_000) as f64 / 1e11;
            let y = 41.0 + rng.below(4_200_000_000_000) as f64 / 1e11;
            out.push_str(&format!("[{x:.15},{y:.15}]"));
            if p + 1 < points {
                out.push(',');
            }
        }
        out.push(']');
        if r + 1 < rings {
            out.push(',');
        }
    }
    out.push_str("]}}\n]\n}\n");
    out.into_bytes()
}

fn github_events() -> Vec<u8> {
    let mut rng = Rng(4);
    let events: Vec<Value> = (0..30u64)
        .map(|i| {
            let login = format!("dev{}", rng.below(10_000));
            let repo = format!("{login}/{}", rng.words(1, LATIN));
            json!({
                "type": if i % 3 == 0 { "PushEvent" } else if i % 3 == 1 { "CreateEvent" } else { "WatchEvent" },
                "created_at": "2013-01-10T07:58:30Z",
                "actor": {
                    "gravatar_id": "a7cec1f75a06a5f8ab53139515da5d99",
                    "login": login,
                    "avatar_url": "https://secure.gravatar.com/avatar/a7cec1f75a06a5f8ab53139515da5d99?d=https://a248.e.akamai.net/assets.github.com%2Fimages%2Fgravatars%2Fgravatar-user-420.png",
                    "url": format!("https://api.github.com/users/{login}"),
                    "id": rng.below(1_000_000)
                },
                "repo": {"url": format!("https://api.github.com/repos/{repo}"), "id": rng.below(10_000_000), "name": repo},
                "public": true,
                "payload": {
                    "push_id": rng.below(1 << 30),
                    "size": 2,
                    "distinct_size": 2,
                    "ref": "refs/heads/master",
                    "head": "2a0ad5b62bdb5e7ef41b0fd5b4d53e7e1f1cf4ea",
                    "before": "c4c9d7e6fcb1d4f4a7f11dbc0b7e1c9a1e0d1a2b",
                    "commits": (0..3).map(|_| json!({
                        "sha": format!("{:040x}", rng.next()),
                        "author": {"email": format!("{login}@example.com"), "name": login},
                        "message": rng.words(16, LATIN),
                        "distinct": true,
                        "url": format!("https://api.github.com/repos/{repo}/commits/{:040x}", rng.next())
                    })).collect::<Vec<_>>()
                },
                "id": (1_652_857_722 + i).to_string()
            })
        })
        .collect();
    pretty(&Value::Array(events))
}

fn rss() -> Vec<u8> {
    let mut rng = Rng(5);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss xmlns:atom=\"http://www.w3.org/2005/Atom\" \
         xmlns:itunes=\"http://www.itunes.com/dtds/podcast-1.0.dtd\" xmlns:media=\"http://search.yahoo.com/mrss/\" version=\"2.0\">\n\
         <channel>\n<title>The Linux Action Show! OGG</title>\n<link>http://www.jupiterbroadcasting.com</link>\n\
         <description>Ogg Vorbis audio versions of The Linux Action Show!</description>\n",
    );
    for i in 0..99 {
        let n = 409 - i;
        out.push_str(&format!(
            "<item>\n<title>Episode {n} | LAS</title>\n<link>http://www.jupiterbroadcasting.com/{n}/</link>\n\
             <description>&lt;p&gt;{} &amp; {}&lt;/p&gt;&lt;p&gt;{}&lt;/p&gt;</description>\n\
             <itunes:author>Jupiter Broadcasting</itunes:author>\n<itunes:explicit>no</itunes:explicit>\n\
             <enclosure url=\"http://www.podtrac.com/pts/redirect.ogg/traffic.libsyn.com/jbmirror/linuxactionshowep{n}.ogg\" \
             length=\"{}\" type=\"audio/ogg\" />\n<pubDate>Sun, 10 Apr 2016 12:00:00 -0700</pubDate>\n\
             <media:content url=\"http://example.com/{n}.ogg\" fileSize=\"{}\" type=\"audio/ogg\" />\n</item>\n",
            rng.words(60, LATIN),
            rng.words(60, LATIN),
            rng.words(100, LATIN),
            rng.below(100_000_000),
            rng.below(100_000_000)
        ));
    }
    out.push_str("</channel>\n</rss>\n");
    out.into_bytes()
}

fn search_response() -> Vec<u8> {
    let mut rng = Rng(6);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response from=\"10\" to=\"40\" selected=\"0\">\n  <summary count=\"535246\" type=\"local\">\n    <types>\n",
    );
    for (i, label) in ["Service", "Datenbestand", "service-view", "Kachel"]
        .iter()
        .enumerate()
    {
        out.push_str(&format!(
            "      <type count=\"{}\" name=\"t{i}\" label=\"{label}\" />\n",
            rng.below(300_000)
        ));
    }
    out.push_str("    </types>\n    <keywords>\n");
    for _ in 0..200 {
        let w = rng.words(1, GERMAN);
        out.push_str(&format!(
            "      <keyword count=\"{}\" name=\"{w}\" label=\"{w}\" />\n",
            rng.below(400_000)
        ));
    }
    out.push_str("    </keywords>\n  </summary>\n");
    let gco = "xmlns:gco=\"http://www.isotc211.org/2005/gco\"";
    for _ in 0..30 {
        out.push_str("  <gmd:MD_Metadata xmlns:gmd=\"http://www.isotc211.org/2005/gmd\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n");
        out.push_str(&format!(
            "    <gmd:fileIdentifier>\n      <gco:CharacterString {gco}>{:016x}-{:04x}</gco:CharacterString>\n    </gmd:fileIdentifier>\n",
            rng.next(),
            rng.below(65536)
        ));
        for _ in 0..55 {
            out.push_str(&format!(
                "    <gmd:descriptiveKeywords>\n      <gmd:MD_Keywords>\n        <gmd:keyword>\n          \
                 <gco:CharacterString {gco}>{}</gco:CharacterString>\n        </gmd:keyword>\n        \
                 <gmd:type>\n          <gmd:MD_KeywordTypeCode codeList=\"https://standards.iso.org/iso/19139/resources/gmxCodelists.xml#MD_KeywordTypeCode\" codeListValue=\"theme\">theme</gmd:MD_KeywordTypeCode>\n        \
                 </gmd:type>\n      </gmd:MD_Keywords>\n    </gmd:descriptiveKeywords>\n",
                rng.words(3, GERMAN)
            ));
        }
        out.push_str("  </gmd:MD_Metadata>\n");
    }
    out.push_str("</response>\n");
    out.into_bytes()
}

fn svg() -> Vec<u8> {
    let mut rng = Rng(7);
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg enable-background=\"new\" height=\"2500\" width=\"5000\" \
         xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n \
         <linearGradient id=\"a\" gradientUnits=\"userSpaceOnUse\" x1=\"0\" x2=\"0\" y1=\"0\" y2=\"2500\">\n  \
         <stop offset=\"0\" stop-color=\"#fff\"/>\n </linearGradient>\n",
    );
    for i in 0..40 {
        out.push_str(&format!(
            " <path id=\"p{i}\" fill=\"#{:06x}\" d=\"M",
            rng.below(1 << 24)
        ));
        for _ in 0..1950 {
            out.push_str(&format!(
                "{}.{} {}.{}c",
                rng.below(5000),
                rng.below(1000),
                rng.below(2500),
                rng.below(1000)
            ));
        }
        out.push_str("z\"/>\n");
    }
    out.push_str("</svg>\n");
    out.into_bytes()
}

fn linescore() -> Vec<u8> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<game xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" \
         id=\"2008/07/10/dblrok-ddorok-2\" venue=\"Generic\" game_pk=\"239575\" away_team_name=\"DSL Blue Jays1\" \
         home_team_name=\"DSL Dodgers\" status=\"Final\" inning=\"7\">\n",
    );
    for inning in 1..=7 {
        out.push_str(&format!(
            "<linescore inning=\"{inning}\" home_inning_runs=\"{}\" away_inning_runs=\"{}\"/>\n",
            inning % 2,
            (inning + 1) % 3
        ));
    }
    out.push_str("<home_probable_pitcher id=\"\" last_name=\"\" number=\"\" wins=\"0\" losses=\"0\" era=\"0\"/>\n</game>\n");
    out.into_bytes()
}
