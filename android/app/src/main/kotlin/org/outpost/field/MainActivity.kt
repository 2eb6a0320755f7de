package org.outpost.field

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.padding
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import org.outpost.core.Outpost
import org.outpost.field.ui.FieldApp

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val app = application as OutpostApp
        setContent {
            MaterialTheme {
                // Opening the database (Keystore, migrations) is slow and may fail (a full
                // disk, a lost key): off the main thread, and a failure is shown, not a crash.
                var opened by remember { mutableStateOf<Result<Outpost>?>(null) }
                LaunchedEffect(Unit) { opened = withContext(Dispatchers.IO) { runCatching { app.core } } }
                opened?.fold(
                    onSuccess = { core -> FieldApp(core = core, onRecordWritten = { SyncWorker.soon(app) }) },
                    onFailure = { e -> Text("Outpost cannot open its data: ${e.message}", Modifier.padding(24.dp)) },
                )
            }
        }
    }
}
