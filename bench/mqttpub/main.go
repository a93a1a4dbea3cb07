// Command mqttpub is the IoT ingest bench's lean publisher: it stands for the devices, so that
// on a small machine the publishing side takes as little CPU from the gateway as it can.
//
//	mqttpub -port 1883 -messages payloads.bin [-host 127.0.0.1] [-inflight 1000]
//
// It reads the pre-signed messages the bench wrote (repeated: big-endian uint16 topic length,
// topic, big-endian uint32 payload length, payload), connects (MQTT 3.1.1, clean session),
// prints "ready", waits for a line on stdin, then publishes every message at QoS 1 with at most
// -inflight unacknowledged (as fast as the broker acknowledges them) and prints one JSON line:
//
//	{"acked": n, "acked_ns": t, "publish_ns": [t0, t1, ...]}
//
// Times are nanoseconds since the line on stdin was read: the bench records its own clock when
// it writes that line, so it can place every publish on its clock (to within the pipe's delay).
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

type message struct {
	topic   string
	payload []byte
}

type report struct {
	Acked     int     `json:"acked"`
	AckedNs   int64   `json:"acked_ns"`
	PublishNs []int64 `json:"publish_ns"`
	Errors    int     `json:"errors"`
}

func readMessages(path string) ([]message, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	source := bufio.NewReaderSize(file, 1<<20)
	var messages []message
	var header [4]byte
	for {
		if _, err := io.ReadFull(source, header[:2]); err == io.EOF {
			return messages, nil
		} else if err != nil {
			return nil, err
		}
		topic := make([]byte, binary.BigEndian.Uint16(header[:2]))
		if _, err := io.ReadFull(source, topic); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(source, header[:4]); err != nil {
			return nil, err
		}
		payload := make([]byte, binary.BigEndian.Uint32(header[:4]))
		if _, err := io.ReadFull(source, payload); err != nil {
			return nil, err
		}
		messages = append(messages, message{string(topic), payload})
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "broker host")
	port := flag.Int("port", 1883, "broker port")
	path := flag.String("messages", "", "file of length-prefixed (topic, payload) pairs")
	inflight := flag.Int("inflight", 1000, "unacknowledged publishes at most")
	clientID := flag.String("client-id", "bench-publisher", "MQTT client id")
	flag.Parse()

	messages, err := readMessages(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mqttpub: reading messages:", err)
		os.Exit(2)
	}
	options := mqtt.NewClientOptions().
		AddBroker(fmt.Sprintf("tcp://%s:%d", *host, *port)).
		SetClientID(*clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetKeepAlive(60 * time.Second)
	client := mqtt.NewClient(options)
	if token := client.Connect(); token.Wait() && token.Error() != nil {
		fmt.Fprintln(os.Stderr, "mqttpub: connecting:", token.Error())
		os.Exit(2)
	}
	defer client.Disconnect(250)

	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "mqttpub: waiting for the start line:", err)
		os.Exit(2)
	}
	start := time.Now()

	// The broker acknowledges QoS 1 publishes of one connection in order, so one goroutine
	// waiting on the tokens in publish order sees each ack about when it arrives. In flight:
	// the token it waits on, those in the channel, and the one being handed over.
	pending := make(chan mqtt.Token, max(*inflight-2, 0))
	result := report{PublishNs: make([]int64, len(messages))}
	done := make(chan struct{})
	go func() {
		for token := range pending {
			token.Wait()
			if token.Error() != nil {
				result.Errors++
			} else {
				result.Acked++
			}
		}
		result.AckedNs = time.Since(start).Nanoseconds()
		close(done)
	}()
	for index, each := range messages {
		result.PublishNs[index] = time.Since(start).Nanoseconds()
		pending <- client.Publish(each.topic, 1, false, each.payload)
	}
	close(pending)
	<-done

	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fmt.Fprintln(os.Stderr, "mqttpub: writing the report:", err)
		os.Exit(2)
	}
}
