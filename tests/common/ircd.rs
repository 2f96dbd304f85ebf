//! A real IRC server for the IRC tests: ngIRCd (Debian's `ngircd`, which `.ci/run`
//! installs), on a free port of 127.0.0.1 with a config of its own in a temp dir; and
//! [`IrcUser`], a minimal IRC client over a raw socket that plays the human on the other
//! side.
//!
//! ngIRCd will not run as root, so it drops to the `irc` user (`ServerUID`), which must be
//! able to reach its PID file; PAM, ident and DNS lookups are off (PAM would refuse every
//! registration after a few seconds), and so are flood penalties (`MaxPenaltyTime = 0`).
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::process::ServerProcess;
use super::{free_port, WAIT};

/// Where Debian installs ngIRCd.
pub const NGIRCD: &str = "/usr/sbin/ngircd";

/// The server's name, the prefix of its own lines.
pub const SERVER_NAME: &str = "irc.junebug.test";

/// Where Debian installs Atheme, the IRC services whose NickServ a server started with
/// [`IrcdOptions::services`] links (over ngIRCd's server protocol, on the client port).
pub const ATHEME: &str = "/usr/bin/atheme-services";

/// The services' server name.
const SERVICES_NAME: &str = "services.junebug.test";

/// The password of the link between ngIRCd and the services.
const LINK_PASSWORD: &str = "link-pass";

/// The name on the TLS certificate of a server started with [`IrcdOptions::tls`].
pub const TLS_NAME: &str = "irc.test";

/// How to set a server up.
#[derive(Default)]
pub struct IrcdOptions {
    /// The password every client must give (the PASS line).
    pub password: Option<String>,
    /// Also listen for TLS, with a certificate for [`TLS_NAME`] from a CA of its own.
    pub tls: bool,
    /// Link Atheme's NickServ to it (see [`ATHEME`]).
    pub services: bool,
}

/// A running ngIRCd; stopped (by its PID) when dropped.
pub struct Ircd {
    /// With [`IrcdOptions::services`]: Atheme. First, so that it goes before the server.
    _services: Option<ServerProcess>,
    /// Before `dir`, so that it is killed before its directory goes.
    process: ServerProcess,
    dir: tempfile::TempDir,
    /// Its plain port on 127.0.0.1 (kept across restarts).
    pub port: u16,
    /// Its TLS port, with [`IrcdOptions::tls`].
    pub tls_port: Option<u16>,
}

impl Ircd {
    /// Starts a plain server without a password.
    pub async fn start() -> Ircd {
        Self::start_with(IrcdOptions::default()).await
    }

    /// Starts a server set up as `options` say.
    pub async fn start_with(options: IrcdOptions) -> Ircd {
        assert!(
            Path::new(NGIRCD).exists(),
            "{NGIRCD} is missing: apt-get install ngircd (.ci/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        // ngIRCd drops to the `irc` user before it writes its PID file.
        let open = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        open(dir.path(), 0o755);
        std::fs::create_dir(dir.path().join("run")).unwrap();
        open(&dir.path().join("run"), 0o777);
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        let port = free_port();
        let password = options
            .password
            .map(|p| format!("\tPassword = {p}\n"))
            .unwrap_or_default();
        let mut tls_port = None;
        let mut tls = String::new();
        if options.tls {
            let (_, key, cert) = super::certificates(dir.path(), TLS_NAME);
            open(&key, 0o644);
            let port = free_port();
            tls_port = Some(port);
            tls = format!(
                "[SSL]\n\tCertFile = {}\n\tKeyFile = {}\n\tPorts = {port}\n",
                cert.display(),
                key.display()
            );
        }
        let services = if options.services {
            format!(
                "[Server]\n\
                 \tName = {SERVICES_NAME}\n\
                 \tMyPassword = {LINK_PASSWORD}\n\
                 \tPeerPassword = {LINK_PASSWORD}\n\
                 \tServiceMask = *Serv\n\
                 \tPassive = yes\n"
            )
        } else {
            String::new()
        };
        let config = format!(
            "[Global]\n\
             \tName = {SERVER_NAME}\n\
             \tInfo = Junebug test server\n\
             \tListen = 127.0.0.1\n\
             \tPorts = {port}\n\
             \tPidFile = {run}/ngircd.pid\n\
             \tMotdPhrase = Welcome to the test server\n\
             \tServerUID = irc\n\
             \tServerGID = irc\n\
             {password}\
             [Limits]\n\
             \tMaxConnectionsIP = 0\n\
             \tMaxNickLength = 30\n\
             \tMaxPenaltyTime = 0\n\
             [Options]\n\
             \tPAM = no\n\
             \tIdent = no\n\
             \tDNS = no\n\
             \tIncludeDir = {conf_d}\n\
             {tls}\
             {services}",
            run = dir.path().join("run").display(),
            conf_d = dir.path().join("conf.d").display(),
        );
        let mut file = std::fs::File::create(dir.path().join("ngircd.conf")).unwrap();
        file.write_all(config.as_bytes()).unwrap();
        let args = vec![
            "-f".into(),
            dir.path().join("ngircd.conf").into_os_string(),
            "-n".into(),
        ];
        // Both ports open together, once the TLS setup (DH parameters) is done.
        let last_port = tls_port.unwrap_or(port);
        let process = ServerProcess::start("ngircd", NGIRCD, args, Some(last_port), None).await;
        let services = match options.services {
            true => Some(start_services(dir.path(), port).await),
            false => None,
        };
        Ircd {
            _services: services,
            process,
            dir,
            port,
            tls_port,
        }
    }

    /// The CA file that signed the TLS certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Kills the server and starts it again on the same port.
    pub async fn restart(&mut self) {
        self.process.restart().await;
    }
}

/// Starts Atheme with NickServ only, linked to the ngIRCd on `port`, its config and
/// database in `dir`; returns once NickServ is on the network.
async fn start_services(dir: &Path, port: u16) -> ServerProcess {
    assert!(
        Path::new(ATHEME).exists(),
        "{ATHEME} is missing: apt-get install atheme-services (.ci/run does)"
    );
    let data = dir.join("atheme");
    std::fs::create_dir(&data).unwrap();
    let config = format!(
        "loadmodule \"modules/protocol/ngircd\";\n\
         loadmodule \"modules/backend/opensex\";\n\
         loadmodule \"modules/crypto/pbkdf2v2\";\n\
         loadmodule \"modules/nickserv/main\";\n\
         loadmodule \"modules/nickserv/identify\";\n\
         loadmodule \"modules/nickserv/register\";\n\
         serverinfo {{ name = \"{SERVICES_NAME}\"; desc = \"Test services\"; numeric = \"00A\";\n\
           recontime = 1; netname = \"junebugtest\"; hidehostsuffix = \"users.test\";\n\
           adminname = \"test\"; adminemail = \"admin@example.org\";\n\
           registeremail = \"noreply@example.org\"; mta = \"/bin/true\";\n\
           loglevel = {{ error; info; }}; maxlogins = 5; maxusers = 5; auth = none;\n\
           casemapping = rfc1459; }};\n\
         uplink \"{SERVER_NAME}\" {{ host = \"127.0.0.1\"; password = \"{LINK_PASSWORD}\"; port = {port}; }};\n\
         nickserv {{ nick = \"NickServ\"; user = \"NickServ\"; host = \"{SERVICES_NAME}\";\n\
           real = \"Nickname Services\"; maxnicks = 5; expire = 30; }};\n\
         general {{ permissive_mode; commit_interval = 5; maxcmdflood = 100; flood_msgs = 100;\n\
           flood_time = 1; kline_time = 0; }};\n\
         database {{ }};\n"
    );
    let config_file = dir.join("atheme.conf");
    std::fs::write(&config_file, config).unwrap();
    let args = vec![
        "-n".into(),
        "-c".into(),
        config_file.into_os_string(),
        "-D".into(),
        data.clone().into_os_string(),
        "-l".into(),
        data.join("atheme.log").into_os_string(),
        "-p".into(),
        data.join("atheme.pid").into_os_string(),
    ];
    let log = Some(data.join("atheme.log"));
    let services = ServerProcess::start("atheme", ATHEME, args, None, log).await;
    // Atheme dials out, so there is no port to await: talk to NickServ until it answers
    // (ngIRCd says 401, no such nick, before it is on).
    let mut probe = IrcUser::connect(port, "probe", None).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        probe.say("NickServ", "HELLO").await;
        let reply = probe
            .expect(|line| command(line) == "401" || sender(line) == "NickServ")
            .await;
        if command(&reply) != "401" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "NickServ did not come on\n{}",
            services.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    probe.send("QUIT").await;
    services
}

/// A person on IRC, over a raw socket: registers, joins, talks, and reads lines (answering
/// the server's PINGs on the way).
pub struct IrcUser {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The user's nick.
    pub nick: String,
}

impl IrcUser {
    /// Connects to `port` as `nick` and waits for the server's welcome.
    pub async fn connect(port: u16, nick: &str, password: Option<&str>) -> IrcUser {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the IRC server");
        let (reader, writer) = stream.into_split();
        let mut user = IrcUser {
            reader: BufReader::new(reader),
            writer,
            nick: nick.to_owned(),
        };
        if let Some(password) = password {
            user.send(&format!("PASS {password}")).await;
        }
        user.send(&format!("NICK {nick}")).await;
        user.send(&format!("USER {nick} 0 * :Test user {nick}"))
            .await;
        user.expect(|line| command(line) == "001").await;
        user
    }

    /// Sends one raw line.
    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write to the IRC server");
    }

    /// Joins `channel`; the nicks already in it (the names list up to its end), without
    /// their `@`/`+` marks.
    pub async fn join(&mut self, channel: &str) -> Vec<String> {
        self.send(&format!("JOIN {channel}")).await;
        let mut members = Vec::new();
        loop {
            let line = self.line().await;
            match command(&line).as_str() {
                "353" if param(&line, 2) == channel => {
                    members.extend(param(&line, 3).split(' ').map(|name| {
                        name.trim_start_matches(['@', '+', '%', '~', '&'])
                            .to_owned()
                    }))
                }
                "366" => return members,
                _ => {}
            }
        }
    }

    /// Says `text` to `target` (a channel or a nick).
    pub async fn say(&mut self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}")).await;
    }

    /// The next line from the server; PINGs are answered and skipped.
    pub async fn line(&mut self) -> String {
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("{} got no line from the IRC server in time", self.nick))
                .expect("read from the IRC server");
            assert!(read > 0, "the IRC server closed {}'s connection", self.nick);
            let line = line.trim_end_matches(['\r', '\n']).to_owned();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}")).await;
                continue;
            }
            return line;
        }
    }

    /// The next line for which `wanted` holds (others are skipped).
    pub async fn expect(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.line().await;
            if wanted(&line) {
                return line;
            }
        }
    }

    /// The text of the next PRIVMSG from `from` to `to` (a channel or our nick).
    pub async fn privmsg(&mut self, from: &str, to: &str) -> String {
        let line = self
            .expect(|line| {
                command(line) == "PRIVMSG" && sender(line) == from && param(line, 0) == to
            })
            .await;
        param(&line, 1)
    }

    /// Registers the nick we are on with NickServ, with `password`.
    pub async fn register_with_nickserv(&mut self, password: &str) {
        self.say(
            "NickServ",
            &format!("REGISTER {password} {}@example.org", self.nick),
        )
        .await;
        self.expect(|line| {
            command(line) == "NOTICE"
                && sender(line) == "NickServ"
                && line.contains("registered to")
        })
        .await;
    }

    /// Waits until `nick` joins `channel`.
    pub async fn wait_for_join(&mut self, channel: &str, nick: &str) {
        self.expect(|line| {
            command(line) == "JOIN" && sender(line) == nick && param(line, 0) == channel
        })
        .await;
    }
}

/// The command of a raw line.
pub fn command(line: &str) -> String {
    let rest = if line.starts_with(':') {
        line.split_once(' ').map_or("", |(_, rest)| rest)
    } else {
        line
    };
    rest.split(' ').next().unwrap_or_default().to_owned()
}

/// The nick a raw line is from.
pub fn sender(line: &str) -> String {
    line.strip_prefix(':')
        .and_then(|rest| rest.split([' ', '!']).next())
        .unwrap_or_default()
        .to_owned()
}

/// Parameter `index` of a raw line (after the command; the trailing one without its `:`).
pub fn param(line: &str, index: usize) -> String {
    let rest = if line.starts_with(':') {
        line.split_once(' ').map_or("", |(_, rest)| rest)
    } else {
        line
    };
    let mut rest = rest.split_once(' ').map_or("", |(_, rest)| rest);
    let mut params = Vec::new();
    while !rest.is_empty() {
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param);
        rest = after;
    }
    params.get(index).copied().unwrap_or_default().to_owned()
}
