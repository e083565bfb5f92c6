import Dispatch
import Foundation
import IProto
import IProtoTestSupport
import Synchronization
import Testing

@Suite struct PipeliningTests {
    @Test func thousandRequestsInOneWriteAreAnsweredInOrder() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        var batch: [UInt8] = []
        for i in 0..<1000 {
            let index = Int64(i % 1000)
            batch += i.isMultiple(of: 2)
                ? Framing.request(funcID: API.replace, requestID: UInt32(i), body: messagePack(.int(index), .string("v\(i)")))
                : Framing.request(funcID: API.read, requestID: UInt32(i), body: messagePack(.int(index - 1)))
        }
        try connection.send(batch)
        for i in 0..<1000 {
            let response = try connection.readResponse()
            #expect(response.requestID == UInt32(i))
            #expect(response.returnCode == .ok)
            if !i.isMultiple(of: 2) { #expect(response.string == "v\(i - 1)") }
        }
    }

    @Test func repeatedRequestIDsAreEchoedUnchanged() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        let frame = Framing.request(funcID: API.read, requestID: 0xdead_beef, body: messagePack(1))
        try connection.send(frame + frame + frame)
        for _ in 0..<3 { #expect(try connection.readResponse().requestID == 0xdead_beef) }
    }

    @Test func aRequestSplitAcrossManySegments() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        let value = String(repeating: "s", count: 200)
        let frame = Framing.request(funcID: API.replace, requestID: 77, body: messagePack(4, .string(value)))
        for byte in frame {
            try connection.send([byte])
            usleep(200)
        }
        let response = try connection.readResponse()
        #expect(response.requestID == 77)
        #expect(response.returnCode == .ok)
        #expect(try connection.read(4).string == value)
    }

    @Test func frameBoundariesAnywhereInTheStream() throws {
        let server = try ServerProcess()
        let connection = try server.connect()
        var stream: [UInt8] = []
        for i in 0..<50 { stream += Framing.request(funcID: API.read, requestID: UInt32(i), body: messagePack(.int(Int64(i)))) }
        // Cut the stream at every awkward place: inside headers, between header and body, inside bodies.
        var offset = 0
        var size = 1
        while offset < stream.count {
            let end = min(stream.count, offset + size)
            try connection.send(Array(stream[offset..<end]))
            offset = end
            size = size % 17 + 1
            usleep(100)
        }
        for i in 0..<50 { #expect(try connection.readResponse().requestID == UInt32(i)) }
    }

    @Test func concurrentClientsOnSeveralWorkers() throws {
        let server = try ServerProcess(["--workers", "2"])
        let port = server.port
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { client in
            do {
                // Each from its own address: together they send more than one client's burst (--rate-burst-per-ip).
                let connection = try TestConnection(port: port, source: "127.0.0.\(client + 2)")
                for i in 0..<300 {
                    let index = client * 100 + i % 100
                    guard try connection.replace(index, "c\(client)-\(i)").returnCode == .ok,
                          try connection.read(index).string == "c\(client)-\(i)"
                    else { throw TestSocketError("client \(client) read back something else") }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
    }

    @Test func concurrentReadsNeverSeeATornValue() throws {
        let server = try ServerProcess(["--workers", "2"])
        let a = String(repeating: "A", count: 256)
        let b = String(repeating: "B", count: 256)
        _ = try server.connect().replace(7, a)
        let port = server.port
        let torn = Mutex(0)
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { client in
            do {
                let connection = try TestConnection(port: port, source: "127.0.0.\(client + 2)")  // as above
                for i in 0..<1000 {
                    if client == 0 {
                        _ = try connection.replace(7, i.isMultiple(of: 2) ? b : a)
                    } else {
                        let value = try connection.read(7).string
                        if value != a && value != b { torn.withLock { $0 += 1 } }
                    }
                }
            } catch {
                errors.withLock { $0.append("\(error)") }
            }
        }
        #expect(errors.withLock { $0 } == [])
        #expect(torn.withLock { $0 } == 0)
    }
}
