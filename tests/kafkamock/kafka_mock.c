/* kafka_mock.c - a librdkafka mock cluster for the fault tests: the faults
 * a real broker cannot produce on demand.
 *
 * usage: kafka_mock TOPIC PARTITIONS MESSAGES
 * Starts a one-broker mock cluster, creates TOPIC, produces MESSAGES JSON
 * values {"n": i}, prints the bootstrap servers on a line and then obeys
 * commands on stdin, one per line, answering "ok" to each:
 *   down | up           the broker stops or starts answering
 *   errors API N        the next N requests of API (fetch, produce,
 *                       commit) fail with a retriable error
 *   quit                (or EOF) stop
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kafka protocol API keys (librdkafka keeps its names for them private). */
static int api_of(const char *name)
{
	if (strcmp(name, "produce") == 0)
		return 0;
	if (strcmp(name, "fetch") == 0)
		return 1;
	if (strcmp(name, "commit") == 0)
		return 8;
	return -1;
}

int main(int argc, char **argv)
{
	char err[256], line[256];

	if (argc != 4) {
		fprintf(stderr,
			"usage: kafka_mock TOPIC PARTITIONS MESSAGES\n");
		return 2;
	}
	const char *topic = argv[1];
	int parts = atoi(argv[2]), n = atoi(argv[3]);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk =
	    rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "kafka_mock: %s\n", err);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
	if (!mc || rd_kafka_mock_topic_create(mc, topic, parts, 1)) {
		fprintf(stderr, "kafka_mock: cannot make the cluster\n");
		return 1;
	}
	/* Results and dead letters need topics of their own. */
	char more[300];
	snprintf(more, sizeof(more), "%s.dead", topic);
	rd_kafka_mock_topic_create(mc, more, 1, 1);
	snprintf(more, sizeof(more), "%s.out", topic);
	rd_kafka_mock_topic_create(mc, more, 1, 1);

	/* A second client, of the cluster, to fill the topic. */
	rd_kafka_conf_t *pc = rd_kafka_conf_new();
	rd_kafka_conf_set(pc, "bootstrap.servers",
			  rd_kafka_mock_cluster_bootstraps(mc), err,
			  sizeof(err));
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
	for (int i = 0; i < n; i++) {
		char v[64], k[32];
		snprintf(v, sizeof(v), "{\"n\": %d}", i);
		snprintf(k, sizeof(k), "%d", i);
		while (rd_kafka_producev(
			   p, RD_KAFKA_V_TOPIC(topic),
			   RD_KAFKA_V_KEY(k, strlen(k)),
			   RD_KAFKA_V_VALUE(v, strlen(v)),
			   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(p, 10);
	}
	if (rd_kafka_flush(p, 30000)) {
		fprintf(stderr, "kafka_mock: messages not stored\n");
		return 1;
	}
	rd_kafka_destroy(p);
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	while (fgets(line, sizeof(line), stdin)) {
		char api[32];
		int count;
		if (strncmp(line, "down", 4) == 0) {
			rd_kafka_mock_broker_set_down(mc, 1);
		} else if (strncmp(line, "up", 2) == 0) {
			rd_kafka_mock_broker_set_up(mc, 1);
		} else if (sscanf(line, "errors %31s %d", api, &count) == 2 &&
			   api_of(api) >= 0) {
			for (int i = 0; i < count; i++)
				rd_kafka_mock_push_request_errors(
				    mc, api_of(api), 1,
				    RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		} else {
			printf("what? %s", line);
			fflush(stdout);
			continue;
		}
		printf("ok\n");
		fflush(stdout);
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
