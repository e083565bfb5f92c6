import Testing
@testable import IProto

@Suite struct FramingTests {
    @Test func responsesAreParsedOnlyWhenComplete() {
        let first = Framing.response(funcID: 2, requestID: 7, returnCode: .ok, body: [0xa2, 0x68, 0x69])
        let second = Framing.response(funcID: 2, requestID: 8, returnCode: .badArguments, body: [])
        let stream = first + second
        for cut in 0..<first.count {
            #expect(Framing.response(in: Array(stream.prefix(cut)), at: 0) == nil, "cut at \(cut)")
        }
        let parsed = Framing.response(in: stream, at: 0)
        #expect(parsed?.header.requestID == 7)
        #expect(parsed?.header.returnCode == .ok)
        #expect(parsed.map { Array(stream[$0.body]) } == [0xa2, 0x68, 0x69])
        let next = Framing.response(in: stream, at: parsed!.body.upperBound)
        #expect(next?.header.requestID == 8)
        #expect(next?.header.returnCode == .badArguments)
        #expect(next?.body == stream.count..<stream.count)
    }

    @Test func requestFramesAreLittleEndianWithTheBodyLength() {
        #expect(Framing.request(funcID: 0x0002_0002, requestID: 0x0102_0304, body: [0x05])
                == [0x02, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x03, 0x02, 0x01, 0x05])
    }
}
