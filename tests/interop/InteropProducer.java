// Apache Kafka's own Java producer (kafka-clients), as a system outside the platform would send events.
// Compiled by tests/interop/producers.py against the jars deploy/local/kafka.sh resolved.
//
// args: bootstrap servers, idempotence (true|false: tansu grants no producer id)
// stdin, one record a line, tab-separated: codec, topic, key (base64), value (base64), headers
// (comma-separated name=base64value, or empty); stdout, one line per record: topic, partition, offset.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class InteropProducer {
  public static void main(String[] args) throws Exception {
    Map<String, List<ProducerRecord<byte[], byte[]>>> byCodec = new LinkedHashMap<>();
    Base64.Decoder base64 = Base64.getDecoder();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      String[] field = line.split("\t", -1);
      ProducerRecord<byte[], byte[]> record =
          new ProducerRecord<>(field[1], base64.decode(field[2]), base64.decode(field[3]));
      if (!field[4].isEmpty()) {
        for (String header : field[4].split(",")) {
          String[] pair = header.split("=", 2);
          record.headers().add(pair[0], base64.decode(pair[1]));
        }
      }
      byCodec.computeIfAbsent(field[0], codec -> new ArrayList<>()).add(record);
    }
    for (Map.Entry<String, List<ProducerRecord<byte[], byte[]>>> entry : byCodec.entrySet()) {
      Properties props = new Properties();
      props.put("bootstrap.servers", args[0]);
      props.put("enable.idempotence", args[1]);
      props.put("acks", "all");
      props.put("compression.type", entry.getKey());
      props.put("linger.ms", "50");
      props.put("key.serializer", ByteArraySerializer.class.getName());
      props.put("value.serializer", ByteArraySerializer.class.getName());
      try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        for (ProducerRecord<byte[], byte[]> record : entry.getValue()) {
          sent.add(producer.send(record));
        }
        for (Future<RecordMetadata> future : sent) {
          RecordMetadata metadata = future.get();
          System.out.println(metadata.topic() + "\t" + metadata.partition() + "\t" + metadata.offset());
        }
      }
    }
  }
}
