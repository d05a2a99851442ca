package prom

import (
	"bufio"
	"compress/gzip"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the media type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes families in the text exposition format 0.0.4: a HELP
// and a TYPE line each, then its series; histograms as _bucket (with le,
// up to +Inf), _sum and _count; summaries as quantiles, _sum and _count.
func WriteText(w io.Writer, families []*Family) error {
	bw := bufio.NewWriter(w)
	var buf []byte
	for _, f := range families {
		buf = buf[:0]
		if f.Help != "" {
			buf = append(buf, "# HELP "...)
			buf = append(buf, f.Name...)
			buf = append(buf, ' ')
			buf = appendEscaped(buf, f.Help, false)
			buf = append(buf, '\n')
		}
		buf = append(buf, "# TYPE "...)
		buf = append(buf, f.Name...)
		buf = append(buf, ' ')
		buf = append(buf, f.Type...)
		buf = append(buf, '\n')
		for _, s := range f.Series {
			buf = appendSeries(buf, f.Name, s)
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func appendSeries(buf []byte, name string, s Series) []byte {
	switch {
	case s.Histogram != nil:
		h := s.Histogram
		for _, b := range h.Buckets {
			buf = appendSample(buf, name, "_bucket", s.Labels, "le", formatFloat(b.UpperBound), float64(b.CumulativeCount))
		}
		buf = appendSample(buf, name, "_bucket", s.Labels, "le", "+Inf", float64(h.Count))
		buf = appendSample(buf, name, "_sum", s.Labels, "", "", h.Sum)
		return appendSample(buf, name, "_count", s.Labels, "", "", float64(h.Count))
	case s.Summary != nil:
		q := s.Summary
		for _, x := range q.Quantiles {
			buf = appendSample(buf, name, "", s.Labels, "quantile", formatFloat(x.Quantile), x.Value)
		}
		buf = appendSample(buf, name, "_sum", s.Labels, "", "", q.Sum)
		return appendSample(buf, name, "_count", s.Labels, "", "", float64(q.Count))
	}
	return appendSample(buf, name, "", s.Labels, "", "", s.Value)
}

// appendSample appends one line; extraName/extraValue, if set, is the le
// or quantile label, written last.
func appendSample(buf []byte, name, suffix string, labels []LabelPair, extraName, extraValue string, v float64) []byte {
	buf = append(buf, name...)
	buf = append(buf, suffix...)
	if len(labels) > 0 || extraName != "" {
		buf = append(buf, '{')
		for i, l := range labels {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendLabel(buf, l.Name, l.Value)
		}
		if extraName != "" {
			if len(labels) > 0 {
				buf = append(buf, ',')
			}
			buf = appendLabel(buf, extraName, extraValue)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	buf = appendFloat(buf, v)
	return append(buf, '\n')
}

func appendLabel(buf []byte, name, value string) []byte {
	buf = append(buf, name...)
	buf = append(buf, '=', '"')
	buf = appendEscaped(buf, value, true)
	return append(buf, '"')
}

// appendEscaped escapes a backslash and a newline (and, in a label value,
// a double quote); invalid UTF-8 becomes U+FFFD, so that one bad value
// cannot make the whole scrape unreadable.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			buf = append(buf, '\\', '\\')
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '"' && quote:
			buf = append(buf, '\\', '"')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

func appendFloat(buf []byte, v float64) []byte {
	switch {
	case math.IsInf(v, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(v, -1):
		return append(buf, "-Inf"...)
	case math.IsNaN(v):
		return append(buf, "NaN"...)
	}
	return strconv.AppendFloat(buf, v, 'g', -1, 64)
}

func formatFloat(v float64) string { return string(appendFloat(nil, v)) }

// Handler serves g's metrics in the text format, gzipped when the client
// accepts it. If gathering fails it answers 500 with the error, as
// client_golang's handler does by default, and logs it (log nil: not).
func Handler(g Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		families, err := g.Gather()
		if err != nil {
			log.Warn("gather metrics", "err", err)
			http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		var out io.Writer = w
		if acceptsGzip(r) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Add("Vary", "Accept-Encoding")
			gz := gzip.NewWriter(w)
			defer gz.Close()
			out = gz
		}
		if err := WriteText(out, families); err != nil {
			log.Debug("write metrics", "err", err) // the scraper went away
		}
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
