package devcloud

import (
	"bytes"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// brokerHook binds each MQTT connection to the thing its SigV4 credentials
// were vended to, the way an AWS IoT policy with ${iot:Connection.Thing...}
// or a client-ID condition would: CONNECT must use the thing name as
// client ID, and the thing may publish and subscribe only under its own
// topics. It also clamps keep-alive to AWS's bounds.
type brokerHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *brokerHook) ID() string { return "edgefort-sigv4-policy" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
	}, []byte{b})
}

// OnConnect refuses a CONNECT over the connect quotas
// (broker_throttle.go), then clamps the keep-alive before mochi arms the
// read deadline (1.5x keep-alive). MQTT 3.1.1 cannot tell the client;
// AWS IoT does the same silently.
func (h *brokerHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if err := h.admitConnect(cl, pk); err != nil {
		return err
	}
	ka := time.Duration(cl.State.Keepalive) * time.Second
	switch {
	case ka == 0:
		ka = BrokerMaxKeepAlive
	case ka < BrokerMinKeepAlive:
		ka = BrokerMinKeepAlive
	case ka > BrokerMaxKeepAlive:
		ka = BrokerMaxKeepAlive
	}
	cl.State.Keepalive = uint16(ka / time.Second)
	return nil
}

// OnConnectAuthenticate accepts a CONNECT only on a SigV4-upgraded
// connection whose client ID is the credentials' thing. A refusal answers
// CONNACK 0x04 (bad user name or password); the existing session of that
// client ID is left alone.
func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	c, ok := cl.Net.Conn.(*wsConn)
	if !ok {
		return false
	}
	if c.thing == "" || pk.Connect.ClientIdentifier != c.thing {
		h.b.stats.refuse(RefusedClientID)
		h.b.log.Info("broker refused CONNECT", "reason", RefusedClientID,
			"client", pk.Connect.ClientIdentifier, "thing", c.thing, "access_key_id", c.accessKeyID)
		return false
	}
	h.b.stats.connects.Add(1)
	h.b.log.Debug("broker accepted CONNECT", "client", cl.ID, "clean", pk.Connect.Clean, "keepalive", cl.State.Keepalive)
	return true
}

// OnACLCheck allows a topic (publish) or filter (subscribe) only under
// edgefort/<thing>/ or $aws/things/<thing>/ (or exactly those roots). A
// refused QoS 1 publish disconnects the client (mochi, MQTT 3.1.1); a
// refused subscription gets SUBACK 0x80.
func (h *brokerHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c, ok := cl.Net.Conn.(*wsConn)
	if ok && thingTopicAllowed(c.thing, topic) {
		return true
	}
	h.b.stats.aclDenied.Add(1)
	h.b.log.Info("broker denied topic", "client", cl.ID, "topic", topic, "publish", write)
	return false
}

// thingTopicAllowed reports whether topic (or filter) lies under the
// thing's own topics. A wildcard may appear only below the thing segment,
// so a filter such as edgefort/+/events is refused.
func thingTopicAllowed(thing, topic string) bool {
	if thing == "" {
		return false
	}
	for _, root := range []string{"edgefort/" + thing, "$aws/things/" + thing} {
		if topic == root || strings.HasPrefix(topic, root+"/") {
			return true
		}
	}
	return false
}

var _ mqtt.Hook = (*brokerHook)(nil)
