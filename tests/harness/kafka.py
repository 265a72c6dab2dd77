"""A real, throw-away Apache Kafka broker for hopper's tests.

The broker is the published Apache Kafka jars (org.apache.kafka:kafka_2.13
and its runtime dependencies), resolved from Maven Central with
``mvn dependency:copy-dependencies`` against ``kafka-pom.xml`` next to this
file and cached outside the source tree.  One KRaft node (broker+controller
in one JVM) runs on loopback with its storage in a temporary directory that
``stop()`` removes.

Admin, produce, consume and offset helpers go through one small Java client
process (compiled from the source embedded below against the cached
kafka-clients jar) that lives as long as the broker: a request is one JSON
line on its stdin, the answer one JSON line on its stdout, so a call costs
milliseconds rather than a JVM start.

See README.md beside this file for the API, cache layout and environment variables.

    from kafka import KafkaBroker          # or: from tests.harness.kafka ...
    with KafkaBroker() as k:
        k.create_topic("in", partitions=3)
        k.produce("in", ["a", "b"])
        assert sorted(k.consume("in")) == ["a", "b"]

In pytest, use the session-scoped fixture ``kafka`` defined here (import it
into a test module or a conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import pytest

KAFKA_VERSION = os.environ.get("HOPPER_KAFKA_VERSION", "3.7.2")
HERE = Path(__file__).resolve().parent
POM = HERE / "kafka-pom.xml"

__all__ = [
    "KAFKA_VERSION",
    "KafkaBroker",
    "KafkaHarnessError",
    "cache_dir",
    "ensure_jars",
    "kafka",
]


class KafkaHarnessError(RuntimeError):
    """The broker or the harness's client failed; the message says why."""


# --------------------------------------------------------------------------
# Java side: a launcher (format storage + run kafka.Kafka in one JVM) and a
# line-oriented JSON client.  Compiled once per source hash into the cache.
# --------------------------------------------------------------------------

_LAUNCH_JAVA = r"""
package hopper.kafkaharness;

import org.apache.kafka.common.utils.Exit;

/** Formats the KRaft storage (kafka.tools.StorageTool format, unless it is
 *  already formatted) and then runs kafka.Kafka, in one JVM: saves a JVM
 *  start per broker start.  args: server.properties cluster-id */
public final class Launch {
    static final class Stop extends RuntimeException {
        final int status;
        Stop(int status, String msg) { super(msg); this.status = status; }
    }

    public static void main(String[] args) throws Exception {
        String props = args[0], clusterId = args[1];
        Exit.setExitProcedure((status, msg) -> { throw new Stop(status, msg); });
        try {
            kafka.tools.StorageTool.main(new String[] {
                "format", "--ignore-formatted", "-t", clusterId, "-c", props});
        } catch (Stop s) {
            if (s.status != 0) {
                System.err.println("hopper-kafka: storage format failed with status "
                                   + s.status + ": " + s.getMessage());
                System.out.flush();
                Runtime.getRuntime().halt(3);
            }
        } finally {
            Exit.resetExitProcedure();
        }
        System.out.println("hopper-kafka: storage formatted, starting kafka.Kafka");
        kafka.Kafka.main(new String[] {props});
    }
}
"""

_CLIENT_JAVA = r"""
package hopper.kafkaharness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** One JSON request per stdin line, one JSON answer per stdout line. */
public final class Client {
    static final ObjectMapper M = new ObjectMapper();
    static String bootstrap;
    static Admin admin;
    static KafkaProducer<String, String> producer;

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, "UTF-8");
        System.setOut(System.err);  // nothing but answers on the real stdout
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 16);
        out.println("{\"ok\":true,\"hello\":true}");
        out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) continue;
            ObjectNode resp;
            try {
                resp = handle(M.readTree(line));
                resp.put("ok", true);
            } catch (Throwable t) {
                resp = M.createObjectNode();
                resp.put("ok", false);
                resp.put("error", describe(t));
                resetClients();
            }
            out.println(M.writeValueAsString(resp));
            out.flush();
        }
        resetClients();
    }

    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (sb.length() > 0) sb.append(" <- ");
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
            if (c.getCause() == c) break;
        }
        return sb.toString();
    }

    static void resetClients() {
        if (producer != null) { try { producer.close(Duration.ZERO); } catch (Throwable e) {} producer = null; }
        if (admin != null) { try { admin.close(Duration.ZERO); } catch (Throwable e) {} admin = null; }
    }

    static Admin admin() {
        if (admin == null) {
            Properties p = new Properties();
            p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(AdminClientConfig.CLIENT_ID_CONFIG, "hopper-harness-admin");
            p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
            p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "50");
            p.put("reconnect.backoff.max.ms", "200");
            admin = Admin.create(p);
        }
        return admin;
    }

    static KafkaProducer<String, String> producer() {
        if (producer == null) {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.CLIENT_ID_CONFIG, "hopper-harness-producer");
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.LINGER_MS_CONFIG, "2");
            p.put(ProducerConfig.BATCH_SIZE_CONFIG, "262144");
            p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
            p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
            p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, "50");
            p.put("reconnect.backoff.max.ms", "200");
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            producer = new KafkaProducer<>(p);
        }
        return producer;
    }

    static long ms(JsonNode req, String field, long dflt) {
        JsonNode n = req.get(field);
        return n == null || n.isNull() ? dflt : n.asLong();
    }

    static String str(JsonNode n) { return n == null || n.isNull() ? null : n.asText(); }

    static List<TopicPartition> partitions(String topic, long timeoutMs) throws Exception {
        TopicDescription d = admin().describeTopics(List.of(topic)).allTopicNames()
            .get(timeoutMs, TimeUnit.MILLISECONDS).get(topic);
        List<TopicPartition> tps = new ArrayList<>();
        for (TopicPartitionInfo i : d.partitions()) tps.add(new TopicPartition(topic, i.partition()));
        return tps;
    }

    static ObjectNode handle(JsonNode req) throws Exception {
        String op = req.get("op").asText();
        long timeout = ms(req, "timeout_ms", 30000);
        long deadline = System.currentTimeMillis() + timeout;
        ObjectNode r = M.createObjectNode();
        switch (op) {
        case "ping": {
            Collection<org.apache.kafka.common.Node> nodes = admin().describeCluster().nodes()
                .get(timeout, TimeUnit.MILLISECONDS);
            admin().listTopics().names().get(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
            r.put("nodes", nodes.size());
            return r;
        }
        case "create_topic": {
            String name = req.get("topic").asText();
            NewTopic nt = new NewTopic(name, req.get("partitions").asInt(), (short) 1);
            Map<String, String> cfg = new HashMap<>();
            JsonNode c = req.get("config");
            if (c != null && c.isObject()) c.fields().forEachRemaining(e -> cfg.put(e.getKey(), e.getValue().asText()));
            nt.configs(cfg);
            admin().createTopics(List.of(nt)).all().get(timeout, TimeUnit.MILLISECONDS);
            // wait until every partition has a leader in the metadata
            while (true) {
                try {
                    TopicDescription d = admin().describeTopics(List.of(name)).allTopicNames()
                        .get(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS).get(name);
                    boolean ok = d.partitions().size() == req.get("partitions").asInt();
                    for (TopicPartitionInfo i : d.partitions()) ok &= i.leader() != null;
                    if (ok) break;
                } catch (ExecutionException e) {
                    if (System.currentTimeMillis() > deadline) throw e;
                }
                if (System.currentTimeMillis() > deadline) throw new TimeoutException("topic " + name + " has no leaders");
                Thread.sleep(20);
            }
            return r;
        }
        case "delete_topic": {
            admin().deleteTopics(List.of(req.get("topic").asText())).all().get(timeout, TimeUnit.MILLISECONDS);
            return r;
        }
        case "list_topics": {
            ArrayNode a = r.putArray("topics");
            for (String t : new TreeSet<>(admin().listTopics().names().get(timeout, TimeUnit.MILLISECONDS))) a.add(t);
            return r;
        }
        case "produce": {
            String topic = req.get("topic").asText();
            JsonNode values = req.get("values");
            JsonNode keys = req.get("keys");
            String key = str(req.get("key"));
            JsonNode pn = req.get("partition");
            Integer partition = pn == null || pn.isNull() ? null : pn.asInt();
            partitions(topic, timeout);  // fail fast on a missing topic instead of blocking in send()
            KafkaProducer<String, String> p = producer();
            List<Future<RecordMetadata>> fs = new ArrayList<>(values.size());
            for (int i = 0; i < values.size(); i++) {
                String k = keys != null && keys.isArray() ? str(keys.get(i)) : key;
                fs.add(p.send(new ProducerRecord<>(topic, partition, k, str(values.get(i)))));
            }
            p.flush();
            Map<Integer, Integer> per = new TreeMap<>();
            for (Future<RecordMetadata> f : fs) {
                RecordMetadata md = f.get(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS);
                per.merge(md.partition(), 1, Integer::sum);
            }
            r.put("count", fs.size());
            ObjectNode pp = r.putObject("partitions");
            per.forEach((k, v) -> pp.put(String.valueOf(k), v));
            return r;
        }
        case "consume": {
            String topic = req.get("topic").asText();
            JsonNode mx = req.get("max");
            long max = mx == null || mx.isNull() ? -1 : mx.asLong();
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, "hopper-harness-consumer");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10000");
            p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            ArrayNode recs = r.putArray("records");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
                List<TopicPartition> tps = partitions(topic, timeout);
                c.assign(tps);
                c.seekToBeginning(tps);
                Map<TopicPartition, Long> end = null;
                if (max < 0) end = c.endOffsets(tps, Duration.ofMillis(Math.max(1, deadline - System.currentTimeMillis())));
                long n = 0;
                while (true) {
                    if (max >= 0 && n >= max) break;
                    if (end != null) {
                        boolean done = true;
                        for (TopicPartition tp : tps)
                            if (c.position(tp, Duration.ofMillis(Math.max(1, deadline - System.currentTimeMillis()))) < end.get(tp)) { done = false; break; }
                        if (done) break;
                    }
                    long left = deadline - System.currentTimeMillis();
                    if (left <= 0) break;
                    for (ConsumerRecord<String, String> rec : c.poll(Duration.ofMillis(Math.min(left, 200)))) {
                        if (max >= 0 && n >= max) break;
                        ArrayNode a = recs.addArray();
                        a.add(rec.partition()); a.add(rec.offset()); a.add(rec.key()); a.add(rec.value()); a.add(rec.timestamp());
                        n++;
                    }
                }
            }
            return r;
        }
        case "offsets": {
            String topic = req.get("topic").asText();
            OffsetSpec spec = "earliest".equals(str(req.get("which"))) ? OffsetSpec.earliest() : OffsetSpec.latest();
            Map<TopicPartition, OffsetSpec> q = new HashMap<>();
            for (TopicPartition tp : partitions(topic, timeout)) q.put(tp, spec);
            ObjectNode o = r.putObject("offsets");
            admin().listOffsets(q).all().get(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS)
                .forEach((tp, info) -> o.put(String.valueOf(tp.partition()), info.offset()));
            return r;
        }
        case "committed": {
            String group = req.get("group").asText();
            String topic = str(req.get("topic"));
            ArrayNode a = r.putArray("offsets");
            admin().listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
                .get(timeout, TimeUnit.MILLISECONDS).forEach((tp, om) -> {
                    if (om == null || (topic != null && !topic.equals(tp.topic()))) return;
                    ArrayNode e = a.addArray();
                    e.add(tp.topic()); e.add(tp.partition()); e.add(om.offset());
                });
            return r;
        }
        case "set_committed": {
            String group = req.get("group").asText();
            String topic = req.get("topic").asText();
            Map<TopicPartition, OffsetAndMetadata> m = new HashMap<>();
            req.get("offsets").fields().forEachRemaining(e ->
                m.put(new TopicPartition(topic, Integer.parseInt(e.getKey())), new OffsetAndMetadata(e.getValue().asLong())));
            admin().alterConsumerGroupOffsets(group, m).all().get(timeout, TimeUnit.MILLISECONDS);
            return r;
        }
        case "describe_group": {
            String group = req.get("group").asText();
            ConsumerGroupDescription d = admin().describeConsumerGroups(List.of(group)).all()
                .get(timeout, TimeUnit.MILLISECONDS).get(group);
            r.put("state", d.state().toString());
            ArrayNode ms = r.putArray("members");
            for (MemberDescription md : d.members()) {
                ObjectNode o = ms.addObject();
                o.put("client_id", md.clientId());
                o.put("consumer_id", md.consumerId());
                o.put("host", md.host());
                ArrayNode ps = o.putArray("partitions");
                for (TopicPartition tp : md.assignment().topicPartitions()) { ArrayNode e = ps.addArray(); e.add(tp.topic()); e.add(tp.partition()); }
            }
            return r;
        }
        default:
            throw new IllegalArgumentException("unknown op " + op);
        }
    }
}
"""

_HELPER_HASH = hashlib.sha256((_LAUNCH_JAVA + _CLIENT_JAVA).encode()).hexdigest()[:12]

_LOG4J_BROKER = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaConfig=WARN
log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN
log4j.logger.kafka.log.LogCleaner=WARN
"""

_LOG4J_CLIENT = """\
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


# --------------------------------------------------------------------------
# Cache: jars, compiled helper, class-data-sharing archives
# --------------------------------------------------------------------------

def cache_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars for ``version`` live (``$HOPPER_KAFKA_CACHE`` or
    ``${XDG_CACHE_HOME:-~/.cache}/hopper``, then ``kafka-<version>``)."""
    base = os.environ.get("HOPPER_KAFKA_CACHE")
    if not base:
        base = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hopper")
    return Path(base) / f"kafka-{version}"


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _which(name: str) -> str:
    p = shutil.which(name)
    if not p:
        raise KafkaHarnessError(f"{name} not found on PATH (the Kafka harness needs a JDK 17 and Maven)")
    return p


def _libs_complete(cache: Path) -> Optional[List[Path]]:
    manifest = cache / "libs.complete"
    try:
        names = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    jars = []
    for name, size in names.items():
        p = cache / "libs" / name
        try:
            if p.stat().st_size != size:
                return None
        except OSError:
            return None
        jars.append(p)
    return sorted(jars) if jars else None


def ensure_jars(version: str = KAFKA_VERSION) -> List[Path]:
    """Return the broker's jars, fetching them with Maven once.

    A ``libs.complete`` manifest (names and sizes) marks a complete cache;
    without it Maven copies the dependencies into a fresh directory that then
    replaces ``libs``.  ``$HOPPER_MAVEN_REPO`` sets Maven's local repository.
    """
    cache = cache_dir(version)
    jars = _libs_complete(cache)
    if jars:
        return jars
    with _locked(cache / ".lock"):
        jars = _libs_complete(cache)
        if jars:
            return jars
        mvn = _which("mvn")
        pom = cache / "kafka-pom.xml"
        shutil.copyfile(POM, pom)
        tmp = cache / f"libs.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [mvn, "-B", "-q", "-f", str(pom), f"-Dkafka.version={version}",
               "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"]
        if os.environ.get("HOPPER_MAVEN_REPO"):
            cmd.insert(1, f"-Dmaven.repo.local={os.environ['HOPPER_MAVEN_REPO']}")
        try:
            res = subprocess.run(cmd, cwd=str(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, timeout=1200)
        except subprocess.TimeoutExpired:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaHarnessError(f"mvn timed out fetching Kafka {version}: {' '.join(cmd)}")
        found = sorted(tmp.glob("*.jar")) if tmp.is_dir() else []
        if res.returncode != 0 or not any(p.name.startswith("kafka_2.13-") for p in found):
            shutil.rmtree(tmp, ignore_errors=True)
            tail = res.stdout.decode(errors="replace")[-4000:]
            raise KafkaHarnessError(f"mvn failed (exit {res.returncode}) fetching Kafka {version}:\n"
                                    f"$ {' '.join(cmd)}\n{tail}")
        shutil.rmtree(cache / "libs", ignore_errors=True)
        os.rename(tmp, cache / "libs")
        manifest = {p.name: p.stat().st_size for p in (cache / "libs").glob("*.jar")}
        (cache / "libs.complete.tmp").write_text(json.dumps(manifest, indent=0, sort_keys=True))
        os.rename(cache / "libs.complete.tmp", cache / "libs.complete")
        return sorted((cache / "libs").glob("*.jar"))


def _ensure_helper(version: str, jars: List[Path]) -> Path:
    """Compile the launcher/client once per source hash into a jar (a jar,
    not a class directory, so class-data sharing can archive it)."""
    cache = cache_dir(version)
    out = cache / f"helper-{_HELPER_HASH}" / "hopper-kafka-helper.jar"
    if out.is_file():
        return out
    with _locked(cache / ".lock"):
        if out.is_file():
            return out
        javac = _which("javac")
        work = Path(tempfile.mkdtemp(prefix="hopper-kafka-javac-"))
        try:
            src = work / "src" / "hopper" / "kafkaharness"
            src.mkdir(parents=True)
            (src / "Launch.java").write_text(_LAUNCH_JAVA)
            (src / "Client.java").write_text(_CLIENT_JAVA)
            classes = work / "classes"
            cmd = [javac, "-nowarn", "-encoding", "UTF-8", "--release", "11", "-d", str(classes),
                   "-cp", os.pathsep.join(map(str, jars)), str(src / "Launch.java"), str(src / "Client.java")]
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if res.returncode != 0:
                raise KafkaHarnessError("javac failed on the Kafka harness helper:\n"
                                        + res.stdout.decode(errors="replace")[-4000:])
            out.parent.mkdir(parents=True, exist_ok=True)
            tmpjar = out.with_suffix(f".tmp-{os.getpid()}")
            with zipfile.ZipFile(tmpjar, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
                for f in sorted(classes.rglob("*.class")):
                    z.write(f, f.relative_to(classes).as_posix())
            os.rename(tmpjar, out)
            for stale in cache.glob("helper-*"):  # older helper sources
                if stale != out.parent:
                    shutil.rmtree(stale, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return out


def _java_key(java: str) -> str:
    real = os.path.realpath(java)
    st = os.stat(real)
    return hashlib.sha256(f"{real}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:10]


def _cds_args(version: str, java: str, name: str, classpath: str) -> tuple:
    """(jvm args, pending archive path or None).  The first run of a JVM kind
    dumps a dynamic class-data-sharing archive at exit; later runs map it,
    which more than halves the broker's start time.  HOPPER_KAFKA_CDS=0 turns
    this off."""
    if os.environ.get("HOPPER_KAFKA_CDS", "1") == "0":
        return [], None
    key = hashlib.sha256(f"{_java_key(java)}|{classpath}".encode()).hexdigest()[:16]
    d = cache_dir(version) / "cds"
    d.mkdir(parents=True, exist_ok=True)
    archive = d / f"{name}-{key}.jsa"
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"], None
    pending = d / f"{name}-{key}.jsa.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return [f"-XX:ArchiveClassesAtExit={pending}"], pending


def _publish_cds(pending: Optional[Path]) -> None:
    if pending is None:
        return
    final = pending.with_name(pending.name.rsplit(".tmp-", 1)[0])
    try:
        if pending.is_file() and pending.stat().st_size > 0 and not final.exists():
            os.rename(pending, final)
            kind = final.name.split("-", 1)[0]
            for old in final.parent.glob(f"{kind}-*.jsa"):  # archives of older helpers/JDKs
                if old != final:
                    old.unlink()
    except OSError:
        pass
    with contextlib.suppress(OSError):
        pending.unlink()


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------

_libc = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _end_process(proc: Optional[subprocess.Popen], term_timeout: float, sig=signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(term_timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)


def _tail(path: Path, n: int = 60) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class _Client:
    """The JSON-lines Java client process."""

    def __init__(self, proc: subprocess.Popen, log: Path):
        self.proc = proc
        self.log = log
        self.buf = b""
        self.lock = threading.Lock()
        self.hello = False

    def _readline(self, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaHarnessError("Kafka harness client did not answer in time; its log:\n" + _tail(self.log, 30))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise KafkaHarnessError("Kafka harness client exited; its log:\n" + _tail(self.log, 30))
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def call(self, op: str, timeout: float, **args) -> Dict[str, Any]:
        with self.lock:
            # the JVM's own start-up is not part of the request's budget
            if not self.hello:
                resp = json.loads(self._readline(time.monotonic() + 120))
                if not resp.get("hello"):
                    raise KafkaHarnessError(f"Kafka harness client said {resp!r} instead of hello")
                self.hello = True
            req = dict(args, op=op, timeout_ms=int(timeout * 1000))
            data = json.dumps(req, separators=(",", ":")).encode() + b"\n"
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except BrokenPipeError:
                raise KafkaHarnessError("Kafka harness client exited; its log:\n" + _tail(self.log, 30))
            resp = json.loads(self._readline(time.monotonic() + timeout + 15))
        if not resp.get("ok"):
            raise KafkaHarnessError(f"{op} failed: {resp.get('error')}")
        return resp

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            _end_process(self.proc, 3)
        with contextlib.suppress(OSError):
            self.proc.stdout.close()


_live: "weakref.WeakSet[KafkaBroker]" = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for b in list(_live):
        with contextlib.suppress(Exception):
            b.stop()


import atexit  # noqa: E402

atexit.register(_stop_all_at_exit)


KeyArg = Union[None, str, Sequence[Optional[str]]]


class KafkaBroker:
    """One KRaft Kafka node (broker+controller) on 127.0.0.1.

    ``start()`` fetches/caches the jars, formats a fresh storage directory
    and starts ``kafka.Kafka``; ``stop()`` ends it and removes the directory.
    ``kill()`` / ``restart()`` keep the storage, for fault tests.
    """

    def __init__(self, version: str = KAFKA_VERSION, heap: str = "512m",
                 start_timeout: Optional[float] = None, config: Optional[Mapping[str, Any]] = None,
                 keep: Optional[bool] = None, full_jit: bool = False):
        self.version = version
        self.heap = heap
        # Tests start the broker with the quick first-tier compiler only
        # (it starts sooner); benchmarks want it compiled as in production.
        self.full_jit = full_jit
        if start_timeout is None:
            start_timeout = float(os.environ.get("HOPPER_KAFKA_START_TIMEOUT", "90"))
        self.start_timeout = start_timeout
        if keep is None:
            keep = os.environ.get("HOPPER_KAFKA_KEEP", "") not in ("", "0")
        self.keep = keep
        self.extra_config = dict(config or {})
        self.port: Optional[int] = None
        self.controller_port: Optional[int] = None
        self.cluster_id: Optional[str] = None
        self.tmpdir: Optional[Path] = None
        self.proc: Optional[subprocess.Popen] = None
        self.client_pid: Optional[int] = None
        self.start_seconds: Optional[float] = None
        self._client: Optional[_Client] = None
        self._jars: List[Path] = []
        self._classpath = ""
        self._java = ""
        self._cds_pending: List[Path] = []

    # ---------------------------------------------------------------- info
    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"``, for bootstrap.servers / metadata.broker.list."""
        if self.port is None:
            raise KafkaHarnessError("broker not started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        assert self.tmpdir is not None
        return self.tmpdir / "broker.log"

    def _log_hint(self) -> str:
        return f"{self.log_path}" + ("" if self.keep else " (removed on stop; HOPPER_KAFKA_KEEP=1 keeps it)")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def running(self) -> bool:
        return self.is_running()

    def log_tail(self, n: int = 60) -> str:
        return _tail(self.log_path, n) if self.tmpdir else "(not started)"

    def pids(self) -> List[int]:
        """PIDs of the JVMs this object started that may still exist."""
        out = []
        if self.proc is not None and self.proc.poll() is None:
            out.append(self.proc.pid)
        if self._client is not None and self._client.proc.poll() is None:
            out.append(self._client.proc.pid)
        return out

    # ----------------------------------------------------------- lifecycle
    def start(self) -> "KafkaBroker":
        """Fetch/cache the jars, format fresh storage, start the node and wait
        until a client sees it.  After kill(): same as restart()."""
        if self.is_running():
            return self
        if self.tmpdir is not None and self.port is not None and self._client is not None:
            return self.restart()
        t0 = time.monotonic()
        self._java = _which("java")
        self._jars = ensure_jars(self.version)
        helper = _ensure_helper(self.version, self._jars)
        self._classpath = os.pathsep.join([str(helper)] + [str(j) for j in self._jars])
        if self.tmpdir is None:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="hopper-kafka-"))
            (self.tmpdir / "log4j-broker.properties").write_text(_LOG4J_BROKER)
            (self.tmpdir / "log4j-client.properties").write_text(_LOG4J_CLIENT)
            # An id starting with "-" would read as an option to the
            # storage tool: draw again.
            self.cluster_id = "-"
            while self.cluster_id.startswith("-"):
                self.cluster_id = base64.urlsafe_b64encode(
                    uuid.uuid4().bytes).decode().rstrip("=")
        _live.add(self)
        try:
            last = None
            for _attempt in range(3):
                if self.port is None or _attempt > 0:
                    self.port, self.controller_port = _free_port(), _free_port()
                    while self.controller_port == self.port:
                        self.controller_port = _free_port()
                    self._write_props()
                    self._stop_client()  # its bootstrap changed
                try:
                    self._launch()
                    if self._client is None:
                        self._start_client()
                    self._wait_ready(t0)
                    break
                except _PortInUse as e:
                    last = e
                    _end_process(self.proc, 5, signal.SIGKILL)
                    shutil.rmtree(self.tmpdir / "data", ignore_errors=True)
            else:
                raise KafkaHarnessError(f"could not bind the broker's ports: {last}")
        except BaseException:
            self.stop()  # the message already carries the log tail
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _write_props(self) -> None:
        assert self.tmpdir is not None
        cfg = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.tmpdir / "data"),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "group.initial.rebalance.delay.ms": 0,
            # After kill() the restarted controller refuses the broker's new
            # registration (DUPLICATE_BROKER_REGISTRATION) until the old
            # session expires: 9s by default, so keep it short.
            "broker.session.timeout.ms": 3000,
            "broker.heartbeat.interval.ms": 500,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.enable": "true",
            "log.cleaner.dedupe.buffer.size": 4 * 1024 * 1024,
            "log.segment.delete.delay.ms": 1000,
            "file.delete.delay.ms": 1000,
        }
        cfg.update(self.extra_config)
        text = "".join(f"{k}={v}\n" for k, v in cfg.items())
        (self.tmpdir / "server.properties").write_text(text)

    def _launch(self) -> None:
        assert self.tmpdir is not None
        args, pending = _cds_args(self.version, self._java, "broker", self._classpath)
        if pending is not None:
            self._cds_pending.append(pending)
        tier = [] if self.full_jit else ["-XX:TieredStopAtLevel=1"]
        cmd = [self._java, f"-Xmx{self.heap}", "-Xms128m", *tier,
               "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
               *args,
               f"-Dlog4j.configuration=file:{self.tmpdir / 'log4j-broker.properties'}",
               f"-Dkafka.logs.dir={self.tmpdir / 'logs'}",
               "-cp", self._classpath, "hopper.kafkaharness.Launch",
               str(self.tmpdir / "server.properties"), str(self.cluster_id)]
        log = open(self.tmpdir / "broker.log", "ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(self.tmpdir), preexec_fn=_die_with_parent)
        finally:
            log.close()

    def _start_client(self) -> None:
        assert self.tmpdir is not None
        args, pending = _cds_args(self.version, self._java, "client", self._classpath)
        if pending is not None:
            self._cds_pending.append(pending)
        cmd = [self._java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
               "-Djava.awt.headless=true", *args,
               f"-Dlog4j.configuration=file:{self.tmpdir / 'log4j-client.properties'}",
               "-cp", self._classpath, "hopper.kafkaharness.Client", self.bootstrap]
        logp = self.tmpdir / "client.log"
        log = open(logp, "ab")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                    cwd=str(self.tmpdir), preexec_fn=_die_with_parent)
        finally:
            log.close()
        self._client = _Client(proc, logp)
        self.client_pid = proc.pid

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.start_timeout
        assert self.proc is not None and self.port is not None
        # 1. the PLAINTEXT port accepts (KRaft opens it once the broker is unfenced)
        while True:
            if self.proc.poll() is not None:
                tail = self.log_tail(80)
                if "Address already in use" in tail or "BindException" in tail:
                    raise _PortInUse(tail.splitlines()[-1] if tail else "")
                raise KafkaHarnessError(
                    f"Kafka broker exited with status {self.proc.returncode} during start-up; "
                    f"log {self._log_hint()}:\n{tail}")
            if time.monotonic() > deadline:
                raise KafkaHarnessError(
                    f"Kafka broker did not open {self.bootstrap} within {self.start_timeout:.0f}s; "
                    f"log {self._log_hint()}:\n{self.log_tail(80)}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            time.sleep(0.05)
        # 2. a real client sees the cluster (metadata + topic listing)
        while True:
            left = deadline - time.monotonic()
            try:
                self._call("ping", timeout=max(1.0, min(left, 10.0)))
                return
            except KafkaHarnessError as e:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise KafkaHarnessError(
                        f"Kafka broker at {self.bootstrap} not ready within {self.start_timeout:.0f}s "
                        f"({e}); log {self.log_path}:\n{self.log_tail(80)}")
                time.sleep(0.1)

    def _stop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _stop_broker(self, timeout: float = 30.0) -> None:
        _end_process(self.proc, timeout)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM the broker (SIGKILL after 30s) and the client, remove the
        temporary directory (unless keep).  Idempotent."""
        try:
            self._stop_client()
            self._stop_broker()
        finally:
            for p in self._cds_pending:
                _publish_cds(p)
            self._cds_pending = []
            if self.tmpdir is not None:
                if not self.keep:
                    shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None
            self.port = self.controller_port = None
            _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the broker (not the client); storage is kept for restart()."""
        _end_process(self.proc, 10, signal.SIGKILL)

    def restart(self, timeout: Optional[float] = None) -> "KafkaBroker":
        """Stop the broker if it runs (SIGTERM) and start it again on the same
        ports and storage; returns once it is ready."""
        if self.tmpdir is None:
            raise KafkaHarnessError("restart() before start()")
        self._stop_broker()
        t0 = time.monotonic()
        saved = self.start_timeout
        if timeout is not None:
            self.start_timeout = timeout
        try:
            self._launch()
            self._wait_ready(t0)
        finally:
            self.start_timeout = saved
        self.start_seconds = time.monotonic() - t0
        return self

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --------------------------------------------------------------- admin
    def _call(self, op: str, timeout: float = 30.0, **args) -> Dict[str, Any]:
        if self._client is None:
            raise KafkaHarnessError("broker not started")
        if self._client.proc.poll() is not None:
            log = self._client.log
            self._client = None
            raise KafkaHarnessError("Kafka harness client died; its log:\n" + _tail(log, 30))
        return self._client.call(op, timeout, **args)

    def create_topic(self, name: str, partitions: int = 1, config: Optional[Mapping[str, Any]] = None,
                     timeout: float = 30.0) -> None:
        """Create ``name`` (replication factor 1) and wait for its leaders."""
        self._call("create_topic", timeout, topic=name, partitions=int(partitions),
                   config={k: str(v) for k, v in (config or {}).items()})

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        self._call("delete_topic", timeout, topic=name)

    def list_topics(self, timeout: float = 30.0) -> List[str]:
        return self._call("list_topics", timeout)["topics"]

    def produce(self, topic: str, lines: Iterable[Optional[str]], key: KeyArg = None,
                partition: Optional[int] = None, timeout: float = 60.0) -> int:
        """Produce one record per line (acks=all, flushed) and return the count.

        ``key`` is None (default partitioner: sticky batches), one string for
        every record, or a sequence with one key per line.  ``partition``
        forces the partition.  One request to the client process per call.
        """
        values = list(lines)
        args: Dict[str, Any] = {"topic": topic, "values": values, "partition": partition}
        if key is None or isinstance(key, str):
            args["key"] = key
        else:
            keys = list(key)
            if len(keys) != len(values):
                raise ValueError(f"{len(keys)} keys for {len(values)} lines")
            args["keys"] = keys
        if not values:
            return 0
        return int(self._call("produce", timeout, **args)["count"])

    def consume_records(self, topic: str, max_messages: Optional[int] = None,
                        timeout: float = 10.0) -> List[Dict[str, Any]]:
        """Read ``topic`` from the beginning of every partition, without a
        group.  With ``max_messages`` None: everything up to the end offsets
        seen at the call (returns as soon as that is read); otherwise up to
        ``max_messages`` records or until ``timeout`` seconds pass.  Records are
        dicts with partition, offset, key, value, timestamp (ms)."""
        resp = self._call("consume", timeout, topic=topic, max=max_messages)
        return [dict(partition=p, offset=o, key=k, value=v, timestamp=ts)
                for p, o, k, v, ts in resp["records"]]

    def consume(self, topic: str, max_messages: Optional[int] = None, timeout: float = 10.0) -> List[Optional[str]]:
        """Values of ``consume_records`` (per-partition order)."""
        return [r["value"] for r in self.consume_records(topic, max_messages, timeout)]

    def topic_offsets(self, topic: str, which: str = "end", timeout: float = 30.0) -> Dict[int, int]:
        """{partition: offset}: the log-end offsets (``which="end"``, i.e. the
        number of records ever written to each partition) or ``"earliest"``."""
        resp = self._call("offsets", timeout, topic=topic, which="earliest" if which == "earliest" else "latest")
        return {int(p): int(o) for p, o in resp["offsets"].items()}

    def committed_offsets(self, group: str, topic: str, timeout: float = 30.0) -> Dict[int, int]:
        """{partition: committed offset} of consumer group ``group`` on
        ``topic`` (partitions without a commit are absent; {} for an unknown
        group)."""
        resp = self._call("committed", timeout, group=group, topic=topic)
        return {int(p): int(o) for _t, p, o in resp["offsets"]}

    def set_committed_offsets(self, group: str, topic: str, offsets: Mapping[int, int],
                              timeout: float = 30.0) -> None:
        """Commit ``offsets`` for ``group`` (which must have no live members)."""
        self._call("set_committed", timeout, group=group, topic=topic,
                   offsets={str(int(p)): int(o) for p, o in offsets.items()})

    def describe_group(self, group: str, timeout: float = 30.0) -> Dict[str, Any]:
        """{"state": "Stable"|"Empty"|"Dead"|..., "members": [{client_id,
        consumer_id, host, partitions: [(topic, partition), ...]}]}"""
        resp = self._call("describe_group", timeout, group=group)
        for m in resp["members"]:
            m["partitions"] = [(t, int(p)) for t, p in m["partitions"]]
        return {"state": resp["state"], "members": resp["members"]}


class _PortInUse(Exception):
    pass


@pytest.fixture(scope="session")
def kafka():
    """A running KafkaBroker shared by the whole test session."""
    broker = KafkaBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
